"""Outcomes of changes made from the dashboard (a rule saved, a silence created), for the run that shows them.

Changes run in widget callbacks, which Streamlit calls before the page is drawn again; the outcome is kept in the
session under a key until the page shows it. A success is shown once; an error stays until that form is used
again, shown next to the field it names (the server's `field`, or the form's own) or else under the form. The
server's own words are shown, never a traceback.
"""

from __future__ import annotations

import streamlit as st

from dashboard.api_client import ApiError
from dashboard.rule_form import FormError


def report(key: str, ok: str | None = None, error: FormError | ApiError | None = None) -> None:
    """Keep ("ok", None, text) or ("error", field or None, the reason) under `key`."""
    if error is None:
        st.session_state[key] = ("ok", None, ok)
    elif isinstance(error, FormError):
        st.session_state[key] = ("error", error.field, error.message)
    else:
        st.session_state[key] = ("error", error.field, error.reason)


def forget(key: str) -> None:
    st.session_state.pop(key, None)


def _error_text(field: str | None, text: str) -> str:
    if not field or f"field {field!r}" in text or text.startswith(f"{field}:"):
        return text  # the server's message names the field already
    return f"**{field}**: {text}"


def _belongs(field: str | None, name: str) -> bool:
    return bool(field) and field.split(".")[0].split("[")[0] == name


def show(key: str, fields: tuple[str, ...] = ()) -> None:
    """The kept outcome under `key`; an error about one of `fields` is left to `field_error` (shown by it)."""
    result = st.session_state.get(key)
    if not result:
        return
    kind, field, text = result
    if kind == "ok":
        st.success(text)
        forget(key)
    elif not any(_belongs(field, name) for name in fields):
        st.error(_error_text(field, text))


def field_error(key: str, name: str) -> None:
    """The kept error under `key` if it is about field `name`, right where this is called (under the field)."""
    result = st.session_state.get(key)
    if result and result[0] == "error" and _belongs(result[1], name):
        st.error(_error_text(result[1], result[2]))
