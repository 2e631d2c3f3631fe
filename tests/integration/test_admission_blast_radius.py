"""Issue 11 item 1: the operator's webhooks are called only where they are needed, with a short
timeout, so a hung operator (SIGSTOP: alive, not answering) cannot hold creates in namespaces it does
not govern, and kube-system never waits on it.

"Called" is read from the kube-apiserver's own counter, ``apiserver_admission_webhook_request_total``
per webhook name, not from wall-clock time; a generous time bound is only a safety net."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.api.common import LabelSelector
from finops_operator.planners.labelselectors import selector_matches
from tests.integration.test_sovereignty import _cleanup, deployment, namespace, region
from tests.kube import Kube, eventually, kubectl_binary
from tests.operator_process import OperatorProcess, free_port, running_operator

BOUND, UNBOUND, OPTED_OUT = "blast-bound", "blast-unbound", "blast-opted-out"
REGION = "blast-eu"
CONFIGURATIONS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
COUNTER = re.compile(r"^apiserver_admission_webhook_request_total\{([^}]*)\} (\S+)$", re.M)


def webhook_calls(kube: Kube) -> dict[str, float]:
    """Calls per webhook name of ours, as the API server counted them."""
    calls: dict[str, float] = {}
    for labels, value in COUNTER.findall(kube.kubectl("get", "--raw", "/metrics")):
        name = re.search(r'name="([^"]*)"', labels)
        if name and name.group(1).endswith(".finops.dev"):
            calls[name.group(1)] = calls.get(name.group(1), 0) + float(value)
    return calls


def create(kube: Kube, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), "create", "-f", "-"],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        env=kube.env,
        timeout=60,
    )


def webhooks(kube: Kube) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for kind in CONFIGURATIONS:
        found += kube.get_json(kind, "finops.dev").get("webhooks") or []
    return found


def selects(webhook: dict[str, Any], kube: Kube, ns: str) -> bool:
    labels = kube.get_json("namespace", ns)["metadata"].get("labels") or {}
    return selector_matches(LabelSelector.model_validate(webhook.get("namespaceSelector") or {}), labels)


def sovereignty_selects(kube: Kube, ns: str) -> bool:
    return any(selects(w, kube, ns) for w in webhooks(kube) if w["name"].startswith("sovereignty-"))


@pytest.fixture
def operator(kube: Kube, tmp_path: Path) -> Iterator[OperatorProcess]:
    args = ("--sample-interval", "2", "--webhook", "--webhook-port", str(free_port()))
    for ns in (UNBOUND, BOUND, OPTED_OUT):
        namespace(kube, ns, "blast" if ns != UNBOUND else "none")
    kube.kubectl("label", "namespace", OPTED_OUT, "finops.dev/admission=disabled", "--overwrite")
    try:
        with running_operator(kube, tmp_path, *args) as process:
            yield process
            os.kill(process.process.pid, signal.SIGCONT)  # never leave it stopped for the teardown
    finally:
        for kind in CONFIGURATIONS:
            kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")
        for name in ("blast-kube-system",):
            kube.kubectl("delete", "deploy", "-n", "kube-system", name, "--ignore-not-found")
        _cleanup(kube, [REGION], [UNBOUND, BOUND, OPTED_OUT])


def test_webhooks_follow_regions_skip_kube_system_and_a_hung_operator_holds_no_unbound_create(
    kube: Kube, operator: OperatorProcess
) -> None:
    eventually(lambda: kube.kubectl("get", *CONFIGURATIONS, "finops.dev", check=False), what="configurations")
    assert not sovereignty_selects(kube, BOUND), "sovereignty webhooks called before any region binds"

    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(region(REGION, "blast", "Enforce")))
    eventually(lambda: sovereignty_selects(kube, BOUND), timeout=30, what="the bound namespace selected")
    for webhook in webhooks(kube):
        assert webhook["timeoutSeconds"] <= 5, webhook
        for ns in ("kube-system", "kube-public", "kube-node-lease", UNBOUND, OPTED_OUT):
            assert not selects(webhook, kube, ns), (webhook["name"], ns)

    # The API server agrees: a Deployment (and the pods it makes) in kube-system calls nothing of ours,
    # while one in the bound namespace does.
    before = webhook_calls(kube)
    assert create(kube, deployment("kube-system", "blast-kube-system")).returncode == 0
    eventually(
        lambda: kube.get_json("pods", "-n", "kube-system", "-l", "app=blast-kube-system")["items"],
        what="kube-system pods created",
    )
    assert create(kube, deployment(UNBOUND, "healthy")).returncode == 0
    assert webhook_calls(kube) == before
    assert create(kube, deployment(BOUND, "governed")).returncode == 0
    assert sum(webhook_calls(kube).values()) > sum(before.values())

    # Hung: the process is alive and its port accepts connections, but nothing answers.
    os.kill(operator.process.pid, signal.SIGSTOP)
    try:
        before = webhook_calls(kube)
        started = time.monotonic()
        result = create(kube, deployment(UNBOUND, "while-hung"))
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 25, "safety net: the old 30 s timeout would have been hit"
        assert kube.get_json("deploy", "-n", UNBOUND, "while-hung")["metadata"]["name"] == "while-hung"
        assert webhook_calls(kube) == before
        # Where it is needed, the hung webhook costs its short timeout and fails open (Ignore).
        assert create(kube, deployment(BOUND, "bound-while-hung")).returncode == 0
    finally:
        os.kill(operator.process.pid, signal.SIGCONT)

    # The last region goes: the sovereignty webhooks serve no namespace any more.
    kube.kubectl("delete", "sovr", REGION, "--wait=true", "--timeout=60s")
    eventually(lambda: not sovereignty_selects(kube, BOUND), timeout=30, what="the selector emptied")
