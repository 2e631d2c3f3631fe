"""The operator's Events as a user sees them: `kubectl describe` says `From finops-operator`, and the
Event names the reporting instance (the operator's host, the pod name in a cluster)."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from tests.integration.test_finopspolicy_enforcement import deployment, events, policy
from tests.kube import Kube, eventually
from tests.operator_process import running_operator

NAMESPACE = "event-source"


def test_events_are_from_finops_operator(kube: Kube, tmp_path: Path) -> None:
    kube.kubectl("create", "namespace", NAMESPACE)
    try:
        objects = [
            deployment(NAMESPACE, "chat", 2, gpus=1),
            policy(NAMESPACE, "tiny", costLimits={"dailyGPUHours": 0.001, "budgetAction": "ScaleToZero"}),
        ]
        kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        with running_operator(kube, tmp_path, "--sample-interval", "2"):
            (event, *_) = eventually(
                lambda: events(kube, NAMESPACE, "BudgetExhausted"), timeout=90, what="event"
            )
            assert event["source"]["component"] == "finops-operator"
            assert event["reportingComponent"] == "finops-operator"
            assert event["reportingInstance"] == socket.gethostname()
            described = kube.kubectl("describe", "fop", "-n", NAMESPACE, "tiny")
            table = described.split("\nEvents:", 1)[1]  # Type  Reason  Age  From  Message
            line = next(x for x in table.splitlines() if "BudgetExhausted" in x)
            assert "finops-operator" in line.split() and "kopf" not in line.split()
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
