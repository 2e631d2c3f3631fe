"""Tools the observability tests cannot do without. Missing ones fail the test with the install
hint, never skip it: CI must not go green without having run them (.ci/run installs prometheus)."""

from __future__ import annotations

import pytest

from tests.prometheus_harness import APT_HINT, PrometheusBinaries, find_binaries


def prometheus_binaries() -> PrometheusBinaries:
    found = find_binaries()
    if found is None:
        pytest.fail(f"prometheus/promtool not on PATH: {APT_HINT}")
    return found
