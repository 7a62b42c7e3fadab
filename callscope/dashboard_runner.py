"""The dashboard process: `python -m callscope.dashboard_runner <streamlit run arguments>`.

Streamlit imports an app's modules in its first script run, so the first visitor after a start paid for them
(~1 s of imports on a 2-core machine: polars, pyarrow, plotly's figure classes and validators, the dashboard's own
modules). This runner imports them, and builds and serialises one small figure of each kind the charts use (plotly
loads its validators on first use), before Streamlit starts serving, then hands over to Streamlit's own command
line, in the same process.

Only modules that call no Streamlit function at import are imported here: dashboard.data's st.cache_data and
dashboard.plot's component would otherwise be created before Streamlit's runtime exists (bound to a stand-in
cache, with a warning per function). They are cheap themselves; what they import is imported here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

# dashboard modules that create Streamlit objects at import, or import one that does: left to the first run.
CREATE_AT_IMPORT = frozenset({"app", "data", "plot", "ui", "sidebar", "rule_editor", "silence_panel"})


def warm_up() -> None:
    """Import what the app's runs import, and exercise plotly's lazy parts once."""
    import plotly.graph_objects as go
    import polars as pl

    import dashboard

    for module in pkgutil.iter_modules(dashboard.__path__):
        if module.name not in CREATE_AT_IMPORT:
            importlib.import_module(f"dashboard.{module.name}")
    fig = go.Figure([go.Scatter(x=[1, 2], y=[1, 2], mode="lines+markers"), go.Bar(x=[1], y=[2])])
    fig.add_trace(go.Pie(labels=["a"], values=[1]))
    fig.update_layout(template="plotly_white", barmode="stack", legend={"orientation": "h"}, autosize=True)
    fig.update_xaxes(type="date")
    fig.add_hline(y=1)
    fig.add_vrect(x0=1, x1=2)
    fig.add_annotation(text="x", showarrow=False)
    fig.to_json()
    pl.DataFrame({"a": [1]}).with_columns(pl.col("a").cast(pl.Float64)).to_arrow()


def main() -> None:
    warm_up()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
