"""callscope/dashboard_runner.py: Streamlit's page served with the server's address written in, so a browser opening
/cost asks /_stcore/health at once rather than /cost/_stcore/health first (a 404 and a retry on every visit; the
browser test tests/browser/test_dashboard_glance.py checks that no page asks it)."""

from __future__ import annotations

from pathlib import Path

from streamlit import file_util

from callscope.dashboard_runner import BASE_URL_HINT, frontend_with_base_url, importable_early


def test_the_page_says_where_the_server_is_before_streamlit_loads(tmp_path: Path) -> None:
    streamlit_static = Path(file_util.get_static_dir())
    served = frontend_with_base_url(streamlit_static, tmp_path)
    assert served == tmp_path
    index = (served / "index.html").read_text()
    original = (streamlit_static / "index.html").read_text()
    assert index.replace(BASE_URL_HINT + "\n    ", "") == original
    assert index.index(BASE_URL_HINT) < index.index('<script type="module"')
    # everything else is Streamlit's own, linked
    assert sorted(p.name for p in served.iterdir()) == sorted(p.name for p in streamlit_static.iterdir())
    for entry in served.iterdir():
        if entry.name != "index.html":
            assert entry.is_symlink() and entry.resolve() == (streamlit_static / entry.name).resolve()
    js = next((served / "static" / "js").glob("index.*.js"))
    assert js.read_bytes() == next((streamlit_static / "static" / "js").glob(js.name)).read_bytes()


def test_another_streamlit_page_is_served_as_it_is(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("<html><script>boot()</script></html>")
    into = tmp_path / "into"
    into.mkdir()
    assert frontend_with_base_url(other, into) == other
    assert list(into.iterdir()) == []


def test_modules_that_create_streamlit_objects_are_left_to_the_first_run() -> None:
    early = importable_early(Path(__file__).resolve().parents[2] / "dashboard")
    assert "charts" in early and "fmt" in early
    assert not {"app", "data", "plot", "ui", "sidebar"} & set(early)  # ui and sidebar import data
