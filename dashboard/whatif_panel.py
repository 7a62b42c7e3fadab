"""The Cost page's what-if table: the cost of the same calls (same tokens, cached and reasoning included) on
another model, per model pair, with the saving per month (GET /api/v1/prices/whatif)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import streamlit as st

from dashboard import data
from dashboard.api_client import ApiError


def render(params: Sequence[tuple[str, str]], models: list[str]) -> None:
    st.subheader("What if another model served these calls?")
    others = st.multiselect("Other model(s)", options=models, default=models[:3], key="whatif_models")
    extra = st.text_input("Another model by name (e.g. gpt-4.1-mini)", key="whatif_extra")
    chosen = [*others, *([extra.strip()] if extra.strip() else [])]
    if not chosen:
        return
    try:
        answer = data.whatif(params, chosen)
    except ApiError as exc:
        st.caption(f"What-if is not available: {exc.reason}")
        return
    rows = answer["rows"]
    if not rows:
        st.caption("No calls with token counts in this view.")
        return
    frame = pl.DataFrame(rows).select(
        "model",
        "other_model",
        "calls",
        "cost_usd",
        "other_cost_usd",
        "saving_usd",
        "saving_per_month_usd",
        "other_price_source",
    )
    st.dataframe(
        frame.sort("saving_per_month_usd", descending=True, nulls_last=True),
        column_config={
            "model": "Model",
            "other_model": "Other model",
            "calls": st.column_config.NumberColumn("Calls"),
            "cost_usd": st.column_config.NumberColumn("Cost (USD)", format="$%.4f"),
            "other_cost_usd": st.column_config.NumberColumn("On the other model (USD)", format="$%.4f"),
            "saving_usd": st.column_config.NumberColumn("Saving (USD)", format="%+.4f"),
            "saving_per_month_usd": st.column_config.NumberColumn("Saving per month (USD)", format="%+.2f"),
            "other_price_source": "Price of the other model",
        },
        hide_index=True,
        key="whatif_table",
    )
