"""Integration tests share one cluster per session (tests/conftest.py); this keeps the modules
from leaking into each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube import Kube, drop_namespaces, namespaces


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True, scope="module")
def _module_leaves_no_namespaces_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the namespaces a module created when it ends. The kwok nodes have a fixed number of
    GPUs: pods one module leaves running would starve the scheduling of the modules after it."""
    module_items = [item for item in request.session.items if item.getparent(pytest.Module) is request.node]
    if not any("kube" in getattr(item, "fixturenames", ()) for item in module_items):
        yield
        return
    kube: Kube = request.getfixturevalue("kube")
    before = namespaces(kube)
    yield
    created = namespaces(kube) - before
    if created:
        drop_namespaces(kube, *created)
