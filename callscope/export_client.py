"""`callscope export --server URL`: the read API's export route, streamed to a file with a progress bar."""

from __future__ import annotations

import sys
from typing import BinaryIO

import httpx
from tqdm import tqdm

from analytics.export import ExportFormat


def export_from_server(
    url: str, fmt: ExportFormat, window: dict[str, list[str]], out: BinaryIO, *, read_key: str | None
) -> int:
    """Stream GET /api/v1/export into `out`; returns the number of calls (counted on the way through)."""
    headers = {"authorization": f"Bearer {read_key}"} if read_key else {}
    params = [(k, v) for k, values in window.items() for v in values] + [("format", fmt.value)]
    show = sys.stderr.isatty()
    try:
        with httpx.stream(
            "GET", url.rstrip("/") + "/api/v1/export", params=params, headers=headers, timeout=None
        ) as response:
            if response.status_code != 200:
                response.read()
                try:
                    reason = response.json().get("error", response.text)
                except ValueError:
                    reason = response.text
                raise ConnectionError(f"{url} answered {response.status_code}: {reason}")
            written = 0
            with tqdm(unit="B", unit_scale=True, disable=not show, file=sys.stderr) as bar:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    bar.update(len(chunk))
                    if fmt is not ExportFormat.PARQUET:
                        written += chunk.count(b"\n")
    except httpx.HTTPError as exc:
        raise ConnectionError(f"cannot reach {url}: {exc}") from exc
    if fmt is ExportFormat.CSV:
        written -= 1  # the header line
    elif fmt is ExportFormat.PARQUET:
        out.flush()
        written = -1
    return written
