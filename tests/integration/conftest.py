"""Integration tests share one cluster per session (tests/conftest.py); this keeps the modules
from leaking into each other."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.kube import Kube

NAMESPACE_CLEANUP_SECONDS = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def _namespaces(kube: Kube) -> set[str]:
    return {item["metadata"]["name"] for item in kube.get_json("namespaces")["items"]}


def _delete_namespaces(kube: Kube, names: set[str]) -> None:
    """Delete the namespaces and wait until they are gone. No operator (and no Argo CD) runs
    between modules, so finalizers left on their objects (the GPU ledger's on pods, Argo CD's on
    Applications) are removed by hand, as the docs tell users to on uninstall."""
    kube.kubectl("delete", "namespace", "--wait=false", "--ignore-not-found", *sorted(names))
    kinds = kube.kubectl("api-resources", "--verbs=list,patch", "--namespaced", "-o", "name").split()
    unfinalized = json.dumps({"metadata": {"finalizers": None}})
    deadline = time.monotonic() + NAMESPACE_CLEANUP_SECONDS
    while remaining := names & _namespaces(kube):
        if time.monotonic() > deadline:
            pytest.fail(
                f"namespaces still terminating after {NAMESPACE_CLEANUP_SECONDS}s: {sorted(remaining)}"
            )
        for namespace in remaining:
            listed = kube.kubectl("get", ",".join(kinds), "-n", namespace, "-o", "json", check=False)
            for item in json.loads(listed or "{}").get("items", []):
                if item["metadata"].get("finalizers"):
                    group = item["apiVersion"].rpartition("/")[0]
                    kind = f"{item['kind']}.{group}" if group else item["kind"]
                    name = item["metadata"]["name"]
                    kube.kubectl(
                        "patch", kind, name, "-n", namespace, "--type=merge", "-p", unfinalized, check=False
                    )
        time.sleep(1)


@pytest.fixture(autouse=True, scope="module")
def _module_leaves_no_namespaces_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the namespaces a module created when it ends. The kwok nodes have a fixed number of
    GPUs: pods one module leaves running would starve the scheduling of the modules after it."""
    module_items = [item for item in request.session.items if item.getparent(pytest.Module) is request.node]
    if not any("kube" in getattr(item, "fixturenames", ()) for item in module_items):
        yield
        return
    kube: Kube = request.getfixturevalue("kube")
    before = _namespaces(kube)
    yield
    created = _namespaces(kube) - before
    if created:
        _delete_namespaces(kube, created)
