"""Tests in real Chromium (Debian's package, driven by Playwright; never a downloaded browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.stack import CHROMIUM


def require_chromium() -> None:
    """At a browser test module's top: skip it where Chromium is missing, but fail in CI, which installs it."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
