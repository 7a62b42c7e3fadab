"""Price book: the entries with their effective dates (config file and API), every change in the audit log, price
coverage (unpriced models, genai-prices data age), and re-pricing stored calls with a progress bar."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from dashboard import data, fmt
from dashboard.api_client import ApiError

client = data.client()
st.title("Price book")
st.caption(
    "Prices with effective dates on top of genai-prices: a call is priced by the entry in force at its start, else"
    " by genai-prices. After a change, re-price the calls it concerns below; their previous cost is kept."
)
entries = client.price_entries()
if entries:
    st.dataframe(
        pl.DataFrame(entries).select(
            "entry_id",
            "source",
            "provider",
            "model",
            "input_mtok",
            "cache_read_mtok",
            "cache_write_mtok",
            "output_mtok",
            "reasoning_mtok",
            "valid_from",
            "valid_to",
            "note",
        ),
        hide_index=True,
        key="price_entries",
    )
else:
    st.info("No price entries: every call is priced by genai-prices.")

with st.expander("Add a price entry"), st.form("new_price"):
    cols = st.columns(3)
    provider = cols[0].text_input("Provider (or *)", value="*")
    model = cols[1].text_input("Model (name or glob, e.g. gpt-4o*)")
    note = cols[2].text_input("Note")
    cols = st.columns(5)
    rates = {
        k: cols[i].text_input(label)
        for i, (k, label) in enumerate(
            [
                ("input_mtok", "Input $/Mtok"),
                ("cache_read_mtok", "Cache read"),
                ("cache_write_mtok", "Cache write"),
                ("output_mtok", "Output $/Mtok"),
                ("reasoning_mtok", "Reasoning"),
            ]
        )
    }
    cols = st.columns(2)
    valid_from = cols[0].text_input("Valid from (ISO date, empty: always)")
    valid_to = cols[1].text_input("Valid to (exclusive, empty: open)")
    if st.form_submit_button("Add entry"):
        body = {"provider": provider, "model": model, "note": note or None}
        body |= {k: v for k, v in rates.items() if v.strip()}
        body |= {k: v for k, v in (("valid_from", valid_from), ("valid_to", valid_to)) if v.strip()}
        try:
            client.add_price_entry(body)
        except ApiError as exc:
            st.error(f"Not added: {exc.reason}")
        else:
            st.success("Entry added. Re-price the calls it covers below.")

st.subheader("Re-price stored calls")
cols = st.columns([2, 2, 1])
start = cols[0].date_input("From", value=datetime.now(UTC).date() - timedelta(days=30), key="reprice_from")
end = cols[1].date_input("To (exclusive)", value=datetime.now(UTC).date() + timedelta(days=1), key="reprice_to")
if cols[2].button("Re-price", key="reprice_go"):
    try:
        run = client.start_reprice((("from", start.isoformat()), ("to", end.isoformat())))
    except ApiError as exc:
        st.error(f"Not started: {exc.reason}")
    else:
        bar = st.progress(0.0, text="re-pricing…")
        while True:
            state = client.reprice_run(run["run_id"])
            total = state["total"] or 1
            bar.progress(
                min(state["scanned"] / total, 1.0),
                text=f"{state['scanned']:,} of {state['total']:,} calls, {state['changed']:,} changed",
            )
            if state["status"] != "running":
                break
            time.sleep(0.5)
        if state["status"] == "done":
            st.success(f"Re-priced: {state['changed']:,} of {state['scanned']:,} calls changed.")
        else:
            st.error(f"Re-pricing failed: {state['error']}")

st.subheader("Price coverage (last 30 days)")
coverage = client.price_coverage((("last", "30d"),))
meta = coverage.get("meta", {})
if meta.get("warning"):
    st.warning(meta["warning"])
st.caption(
    f"Unpriced calls: {meta.get('unpriced_calls', 0):,} of {meta.get('calls', 0):,}"
    f" ({fmt.pct(meta.get('unpriced_call_share'))} of calls, {fmt.pct(meta.get('unpriced_token_share'))} of tokens)."
    f" genai-prices data: newest price {meta.get('genai_prices_data_date')}. Alert on it with the metric"
    " unpriced_call_share."
)
if coverage.get("data"):
    st.dataframe(pl.DataFrame(coverage["data"]), hide_index=True, key="unpriced_models")

st.subheader("Audit log")
audit = client.price_audit()
if audit:
    st.dataframe(
        pl.DataFrame(
            [
                {
                    "at": a["at"],
                    "actor": a["actor"],
                    "action": a["action"],
                    "entry": a["entry_id"],
                    "old": str(a["old"]) if a["old"] else "",
                    "new": str(a["new"]) if a["new"] else "",
                }
                for a in audit
            ]
        ),
        hide_index=True,
        key="price_audit",
    )
else:
    st.caption("No change yet.")
