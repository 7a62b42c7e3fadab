"""The OTLP/HTTP and read API socket: connections accepted on it send small answers at once (TCP_NODELAY).

Without it, a response written in two parts (headers, then body) waited for the client's delayed ACK of the first
part: every small answer on a kept-alive connection (the dashboard's, an exporter's) took ~44 ms instead of ~3.
"""

from __future__ import annotations

import socket

from callscope.server import _bind


def test_accepted_connections_have_nagle_off():
    listener = _bind("127.0.0.1", 0)
    try:
        listener.listen(1)
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        try:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            accepted.close()
            client.close()
    finally:
        listener.close()
