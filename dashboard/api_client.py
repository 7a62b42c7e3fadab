"""The dashboard's only way to the data: HTTP calls to the read API, answers turned into polars frames.

No Streamlit here (so it is usable and testable on its own), no SQL, no store file. Tables travel as Arrow IPC
streams (`format=arrow`), so types (timestamps with their zone, nulls, integers) survive the trip exactly.
Every failure becomes an `ApiError` whose message a person can act on; pages never show a traceback.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import polars as pl
import pyarrow as pa

from dashboard.money_api import MoneyApi

ENV_URL = "CALLSCOPE_API_URL"  # where the dashboard finds the read API (set by dashboard/launch.py)
ENV_KEY = "CALLSCOPE_API_KEY"  # the read key it sends
Params = Sequence[tuple[str, str]]  # query parameters, repeatable keys kept (service=a&service=b)


class ApiError(RuntimeError):
    """The read API could not answer; `kind` is unreachable, unauthorized, bad_request, not_found, conflict,
    throttled or server. `reason` is the server's own words, `field` the input field it named (rule routes name it
    apart)."""

    def __init__(self, kind: str, message: str, url: str = "", *, reason: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.url = url
        self.reason = reason or message
        self.field = field


@dataclass(frozen=True)
class ApiConfig:
    url: str  # the read API root, e.g. http://127.0.0.1:4318/api/v1
    key: str | None = None
    timeout_s: float = 60.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of the process: building one reads the CA bundle (~25 ms), and the
    sign-in check makes a client per new browser tab."""
    return httpx.create_ssl_context()  # httpx's own default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)


class ApiClient(MoneyApi):
    """A small synchronous client over one pooled httpx connection (budget and price routes: dashboard/money_api.py)."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        headers = {"authorization": f"Bearer {config.key}"} if config.key else {}
        self._http = httpx.Client(
            base_url=config.url.rstrip("/"), headers=headers, timeout=config.timeout_s, verify=tls_context()
        )

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Params = (), **extra: Any) -> httpx.Response:
        return self._request("GET", path, params, **extra)

    def _request(
        self, method: str, path: str, params: Params = (), *, body: Any = None, **extra: Any
    ) -> httpx.Response:
        """One request with the read key; `body` goes as JSON (POST/PUT). Any non-2xx answer is an ApiError."""
        query = list(params) + [(k, _text(v)) for k, v in extra.items() if v is not None]
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.TimeoutException as exc:
            raise ApiError("unreachable", f"the callscope server at {self.config.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                "unreachable",
                f"cannot reach the callscope server at {self.config.url} ({type(exc).__name__}).",
                self.config.url,
            ) from exc
        _raise_for(response, self.config.url)
        return response

    def _json(self, path: str, params: Params = (), **extra: Any) -> Any:
        return self._get(path, params, **extra).json()

    def _send(self, method: str, path: str, body: Any = None, params: Params = (), **extra: Any) -> Any:
        return self._request(method, path, params, body=body, **extra).json()

    def _frame(self, path: str, params: Params = (), **extra: Any) -> pl.DataFrame:
        response = self._get(path, params, format="arrow", **extra)
        table = pa.ipc.open_stream(response.content).read_all()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    # -- routes ----------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return self._json("/meta")

    # -- access ----------------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self._json("/auth/me")

    def login(self, name: str, password: str) -> dict[str, Any]:
        return self._send("POST", "/auth/login", {"name": name, "password": password})

    def logout(self) -> dict[str, Any]:
        return self._send("POST", "/auth/logout")

    def audit(self, limit: int = 500) -> dict[str, Any]:
        return self._json("/audit", limit=limit)

    def audit_export(self, fmt: str = "csv") -> bytes:
        return self._get("/audit", format=fmt, limit=100_000).content

    def users(self) -> dict[str, Any]:
        return self._json("/access/users")

    def stats(
        self,
        params: Params,
        metrics: Sequence[str],
        *,
        group_by: Sequence[str] = (),
        bucket: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        top_groups: int | None = None,
        top_by: str | None = None,
    ) -> pl.DataFrame:
        """/stats as a frame: group columns, `bucket` (zoned timestamps) when bucketed, one column per metric."""
        query = [*params, ("metrics", ",".join(metrics)), *(("group_by", g) for g in group_by)]
        return self._frame(
            "/stats", query, bucket=bucket, order_by=order_by, limit=limit, top_groups=top_groups, top_by=top_by
        )

    def compare(
        self, params: Params, metrics: Sequence[str], *, group_by: Sequence[str] = (), limit: int | None = None
    ) -> pl.DataFrame:
        """/stats?compare=true: each metric with <m>_prev, <m>_delta, <m>_delta_pct against the period before."""
        query = [*params, ("metrics", ",".join(metrics)), *(("group_by", g) for g in group_by)]
        return self._frame("/stats", query, compare=True, limit=limit)

    def changes(
        self, params: Params, metric: str, dims: Sequence[str], *, limit: int = 10, baseline: tuple[str, str] | None
    ) -> dict[str, Any]:
        query = [*params, ("metric", metric), *(("dims", d) for d in dims)]
        if baseline is not None:
            query += [("baseline_from", baseline[0]), ("baseline_to", baseline[1])]
        return self._json("/changes", query, limit=limit)

    def histogram(self, params: Params, field: str = "duration_ms", bins: int = 40, scale: str = "log") -> pl.DataFrame:
        return self._frame("/histogram", params, field=field, bins=bins, scale=scale)

    def calls(
        self, params: Params, *, order_by: str = "start_time", desc: bool = True, limit: int = 50, offset: int = 0
    ) -> tuple[pl.DataFrame, int | None]:
        """A page of calls and the number of matching calls (the total travels as a JSON field, so one request)."""
        body = self._json("/calls", params, order_by=order_by, desc=desc, limit=limit, offset=offset)
        frame = pl.DataFrame(body["data"], infer_schema_length=None) if body["data"] else pl.DataFrame()
        return frame, body["meta"]["total"]

    def call(self, trace_id: str, span_id: str) -> dict[str, Any]:
        return self._json(f"/calls/{trace_id}/{span_id}")

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._json(f"/traces/{trace_id}")

    def values(self, dimension: str, params: Params = (), limit: int = 200) -> list[Any]:
        body = self._json(f"/values/{dimension}", params, limit=limit)
        return [row[dimension] for row in body["values"]]

    # -- alerts (rules, instances, history, preview) and notification (silences, the outbox) -----------------

    def alert_rules(self) -> dict[str, Any]:
        """{"rules": [...with source, spec, health, instances by state], "file": {...}, "evaluation": {...}}."""
        return self._json("/alerts/rules")

    def alert_instances(self, rule: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        return self._json("/alerts/instances", rule=rule, state=state)["instances"]

    def alert_history(
        self, *, rule: str | None = None, start: str | None = None, end: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """State changes, newest first; `start`/`end` are ISO 8601 instants."""
        return self._json("/alerts/history", (("from", start),) if start else (), rule=rule, to=end, limit=limit)[
            "history"
        ]

    def preview_rule(self, spec: dict[str, Any], last: str, points: int | None = None) -> dict[str, Any]:
        """The rule (not saved) replayed over the `last` days: series per group, thresholds, firings."""
        return self._send("POST", "/alerts/preview", spec, last=last, points=points)

    def create_rule(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", "/alerts/rules", spec)

    def update_rule(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._send("PUT", f"/alerts/rules/{quote(name, safe='')}", spec)

    def delete_rule(self, name: str) -> dict[str, Any]:
        return self._send("DELETE", f"/alerts/rules/{quote(name, safe='')}")

    def silences(self, state: str | None = None) -> list[dict[str, Any]]:
        return self._json("/alerts/silences", state=state)["silences"]

    def create_silence(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", "/alerts/silences", body)

    def expire_silence(self, silence_id: str) -> dict[str, Any]:
        return self._send("DELETE", f"/alerts/silences/{quote(silence_id, safe='')}")

    def notifications(self, *, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        """{"counts": {status: n}, "notifications": [...newest first, with attempts and last_error]}."""
        return self._json("/alerts/notifications", status=status, limit=limit)

    # -- drift and anomalies (model = the model asked for, request_model) ---------------------------------------

    def drift(self, params: Params = ()) -> dict[str, Any]:
        """/drift: verdicts of a run (default the latest) per (service, model) and metric, with the run."""
        return self._json("/drift", params)

    def drift_compare(self, params: Params) -> dict[str, Any]:
        """/drift/compare: verdicts computed now, e.g. since a release (service=..., release=...)."""
        return self._json("/drift/compare", params)

    def drift_distribution(self, params: Params) -> dict[str, Any]:
        """/drift/distribution: both windows' distributions of one cell and metric, and the verdict on them."""
        return self._json("/drift/distribution", params)

    def releases(self, params: Params = ()) -> list[dict[str, Any]]:
        return self._json("/releases", params)["releases"]

    def anomalies(self, params: Params = ()) -> dict[str, Any]:
        """/anomalies: anomalous hours, newest first, each with the filters that select its calls."""
        return self._json("/anomalies", params)

    def anomaly_series(self, params: Params) -> list[dict[str, Any]]:
        """/anomalies/series: scored hours (value, baseline, spread, score, anomalous), oldest first."""
        return self._json("/anomalies/series", params)["data"]

    def export(self, params: Params, fmt: str) -> Iterator[bytes]:
        """The /export stream, chunk by chunk, as the server produces it."""
        query = [*params, ("format", fmt)]
        try:
            with self._http.stream("GET", "/export", params=query, timeout=None) as response:
                if response.status_code != 200:
                    response.read()
                    _raise_for(response, self.config.url)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise ApiError("unreachable", f"the export from {self.config.url} failed ({type(exc).__name__})") from exc


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _raise_for(response: httpx.Response, url: str) -> None:
    if 200 <= response.status_code < 300:
        return
    field = None
    try:
        body = response.json()
        reason = str(body.get("error") or response.text)
        field = body.get("field")
    except (ValueError, AttributeError):
        reason = response.text[:300]
    status = response.status_code
    if status == 401:
        raise ApiError(
            "unauthorized",
            "the callscope server refused the credential: sign in again, or set CALLSCOPE_API_KEY to one of the "
            f"server's read keys and restart the dashboard. ({reason})",
            url,
            reason=reason,
        )
    if status == 403:
        raise ApiError("forbidden", f"not allowed: {reason.removeprefix('not allowed: ')}", url, reason=reason)
    if status == 404:
        raise ApiError("not_found", reason, url, reason=reason)
    if status == 409:
        raise ApiError("conflict", reason, url, reason=reason)
    if status == 429:  # e.g. too many failed sign-ins: the reason says how long to wait
        raise ApiError("throttled", reason, url, reason=reason)
    if status == 400:
        raise ApiError("bad_request", f"the server rejected the question: {reason}", url, reason=reason, field=field)
    raise ApiError("server", f"the callscope server answered HTTP {status}: {reason}", url, reason=reason)
