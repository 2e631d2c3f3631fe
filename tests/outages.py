"""Site outages on the local control plane (kwok plays the kubelets).

Labeling a node ``finops.dev/simulate=offline`` takes it out of kwok's selection: nothing renews its
Lease or reports its pods any more, as at a site that lost its uplink. The node-lifecycle controller
then marks the node NotReady (``Unknown``) and its pods not Ready once ``--node-monitor-grace-period``
(20 s) has passed since the last renewal. Removing the label hands the node back to kwok.
"""

from __future__ import annotations

from typing import Any

from finops_operator.devcluster.nodes import OFFLINE, SIMULATE_LABEL
from tests.kube import Kube, eventually

# Grace period (20 s) + Lease renewal interval (10 s) + node-monitor period (5 s), with room for a busy
# 2-core machine.
OUTAGE_DETECTION_TIMEOUT = 90


def ready(conditions: list[dict[str, Any]] | None) -> bool:
    """A node's or a pod's ``Ready`` condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions or [])


def node_ready(kube: Kube, node: str) -> bool:
    return ready(kube.get_json("node", node)["status"].get("conditions"))


def take_offline(kube: Kube, *nodes: str) -> None:
    """The sites lose their uplink; returns once the control plane reports every node NotReady."""
    for node in nodes:
        kube.kubectl("label", "node", node, f"{SIMULATE_LABEL}={OFFLINE}", "--overwrite")
    try:
        eventually(
            lambda: not any(node_ready(kube, node) for node in nodes),
            timeout=OUTAGE_DETECTION_TIMEOUT,
            what=f"{', '.join(nodes)} NotReady",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_heartbeats(kube, nodes)}") from None


def _heartbeats(kube: Kube, nodes: tuple[str, ...]) -> str:
    """What the node-lifecycle controller decides from: each node's labels, Ready condition and Lease."""
    lines = []
    for node in nodes:
        obj = kube.get_json("node", node)
        lease = kube.get_json("lease", "-n", "kube-node-lease", node)
        condition = [c for c in obj["status"].get("conditions") or [] if c["type"] == "Ready"]
        lines.append(
            f"{node}: labels={obj['metadata'].get('labels')} ready={condition} lease={lease['spec']}"
        )
    if kube.control_plane is not None:
        for name in ("kwok", "kube-controller-manager"):
            log = kube.control_plane.directory / "logs" / f"{name}.log"
            if log.exists():
                lines += [f"--- {log} (last lines)", *log.read_text(errors="replace").splitlines()[-30:]]
    return "\n".join(lines)


def bring_online(kube: Kube, *nodes: str) -> None:
    """The uplinks are back; returns once every node is Ready again."""
    for node in nodes:
        kube.kubectl("label", "node", node, f"{SIMULATE_LABEL}-")
    eventually(
        lambda: all(node_ready(kube, node) for node in nodes), timeout=30, what=f"{', '.join(nodes)} Ready"
    )
