"""What the ingest path raises to a receiver, so a receiver can answer it without knowing who raised it.

Receivers map these to protocol answers (HTTP 429/503 with Retry-After, gRPC UNAVAILABLE); a body that cannot be
decoded raises collector.decode.DecodeFailure, which carries its HTTP status.
"""

from __future__ import annotations


class Overloaded(Exception):
    """The write queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"collector overloaded: retry after {retry_after}s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The collector is shutting down and accepts no new work."""
