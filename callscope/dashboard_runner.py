"""The dashboard process: `python -m callscope.dashboard_runner <streamlit run arguments>`.

Streamlit imports an app's modules in its first script run, so the first visitor after a start paid for them
(~1 s of imports on a 2-core machine: polars, pyarrow, pandas (Streamlit's data-frame checks import it at the first
table or component), the dashboard's own modules). This runner imports them and builds and serialises one small
figure of each kind the charts use before Streamlit starts serving, then hands over to Streamlit's own command line,
in the same process.

It also serves Streamlit's page with the server's address written in (`frontend_with_base_url`): otherwise the
browser, opening a page such as /cost, first asks /cost/_stcore/health and /cost/_stcore/host-config (in case the
app is served under /cost), gets two 404s, and only then asks the root: a round trip and a retry on every visit of
every page but the Overview, before the page can connect.

Only modules that call no Streamlit function at import are imported here: dashboard.data's st.cache_data and
dashboard.plot's component would otherwise be created before Streamlit's runtime exists (bound to a stand-in
cache, with a warning per function). They are cheap themselves; what they import is imported here.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

# dashboard modules that create Streamlit objects at import: left to the first run, with every module that
# imports one of them (found by reading the imports, so a new page module cannot break the rule unnoticed).
CREATE_AT_IMPORT = frozenset({"app", "data", "plot"})


def _dashboard_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "dashboard":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dashboard."):
            names.add(node.module.split(".")[1])
    return names


def importable_early(package_dir: Path) -> list[str]:
    """The dashboard modules that neither are nor import (at any depth) one of CREATE_AT_IMPORT."""
    imports = {p.stem: _dashboard_imports(p) for p in package_dir.glob("*.py") if p.stem != "__init__"}
    late = set(CREATE_AT_IMPORT)
    while True:
        more = {name for name, used in imports.items() if name not in late and used & late}
        if not more:
            return sorted(set(imports) - late)
        late |= more


def warm_up() -> None:
    """Import what the app's runs import, and draw each kind of figure once."""
    import pandas  # noqa: F401 (Streamlit imports it lazily, inside the first run that shows a table)
    import polars as pl

    import dashboard

    for name in importable_early(Path(dashboard.__file__).parent):
        importlib.import_module(f"dashboard.{name}")
    from dashboard import api_client, charts

    api_client.tls_context()  # the process's one TLS context: reads the CA bundle (~50 ms of a first visit)
    frame = pl.DataFrame({"bucket": [0, 1], "g": ["a", "b"], "calls": [1.0, 2.0]})
    charts.small_multiples(frame, "g", {"calls": "calls"}, "calls", "warm-up").to_json()
    charts.series(frame, "calls", "calls", "warm-up", group="g", kind="bar").to_json()
    frame.with_columns(pl.col("calls").cast(pl.Int64)).to_arrow()
    # The process's first element checks, once, whether it runs in a Python REPL by walking the whole stack with
    # inspect.stack(), which reads the source of every frame (0.05-0.1 s of the first visitor's run). It does not.
    from streamlit import delta_generator

    if hasattr(delta_generator, "_use_warning_has_been_displayed"):
        delta_generator._use_warning_has_been_displayed = True


# The page's own directory (where its relative "./static/..." URLs already resolve: the root, or the base URL path
# behind a proxy) is where the server is; Streamlit's frontend reads window.__streamlit once, as it loads.
BASE_URL_HINT = (
    "<script>window.__streamlit = "
    '{...window.__streamlit, BACKEND_BASE_URL: new URL(".", window.location.href).href};</script>'
)


def frontend_with_base_url(streamlit_static: Path, into: Path) -> Path:
    """Streamlit's static directory, linked file by file into `into`, with BASE_URL_HINT in its index.html."""
    index = (streamlit_static / "index.html").read_text()
    marker = '<script type="module"'
    if marker not in index:  # another Streamlit's page: serve it as it is
        return streamlit_static
    for entry in streamlit_static.iterdir():
        if entry.name != "index.html":
            (into / entry.name).symlink_to(entry)
    (into / "index.html").write_text(index.replace(marker, BASE_URL_HINT + "\n    " + marker, 1))
    return into


def serve_frontend_with_base_url() -> None:
    from streamlit import file_util

    into = Path(tempfile.mkdtemp(prefix="callscope-frontend-"))
    atexit.register(shutil.rmtree, into, ignore_errors=True)
    static = frontend_with_base_url(Path(file_util.get_static_dir()), into)
    file_util.get_static_dir = lambda: str(static)


def main() -> None:
    warm_up()
    serve_frontend_with_base_url()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
