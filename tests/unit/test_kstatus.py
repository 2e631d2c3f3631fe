"""How kstatus (sigs.k8s.io/cli-utils/pkg/kstatus, the status reader of Flux and kpt, built through the
Go module proxy) reads every captured object: the table docs/GITOPS.md and the README state, including
where kstatus is wrong for our kinds. A change on either side fails here first."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from finops_operator.devcluster.argocd import KSTATUS
from finops_operator.devcluster.gotools import ensure_tool
from tests.argocd_lua import KINDS, kind_dir

READS = {
    # kind/state: (what kstatus says, what a GitOps tool should be told)
    "FinOpsPolicy/healthy": ("Current", "Current"),
    "FinOpsPolicy/budget_exhausted": ("Current", "Current"),
    "FinOpsPolicy/idle": ("Current", "Current"),
    "FinOpsPolicy/conflict": ("Current", "Failed"),
    "FinOpsPolicy/invalid_time_zone": ("InProgress", "Failed"),
    "FinOpsPolicy/generation_behind": ("InProgress", "InProgress"),
    "SovereignRegion/healthy": ("Current", "Current"),
    "SovereignRegion/violations": ("Current", "Failed"),
    "SovereignRegion/no_matching_nodes": ("InProgress", "Failed"),
    "SovereignRegion/namespace_conflict": ("Current", "Failed"),
    "SovereignRegion/generation_behind": ("InProgress", "InProgress"),
    "EdgeFleet/healthy": ("Current", "Current"),
    "EdgeFleet/healthy_before_rollback": ("Current", "Current"),
    "EdgeFleet/wave_in_progress": ("Current", "InProgress"),
    "EdgeFleet/paused": ("Current", "InProgress"),
    "EdgeFleet/rolled_back": ("InProgress", "Failed"),
    "EdgeFleet/generation_behind": ("InProgress", "InProgress"),
}
"""The table of docs/GITOPS.md. kstatus reads observedGeneration, Reconciling/Stalled (which we do not
write) and Ready: Ready=False is InProgress (never Failed), Ready=True is Current whatever Conflict,
Compliant or Progressing say."""


@functools.cache
def kstatus() -> Path:
    return ensure_tool(KSTATUS)


def test_kstatus_reads_each_kind_in_each_state_as_documented() -> None:
    files = sorted(p for kind in KINDS for p in (kind_dir(kind) / "testdata").glob("*.yaml"))
    assert len(files) >= 12
    proc = subprocess.run([str(kstatus()), *map(str, files)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = {
        f"{Path(r['file']).parent.parent.name}/{Path(r['file']).stem}": r["status"]
        for r in map(json.loads, proc.stdout.splitlines())
    }
    assert seen == {state: says for state, (says, _) in READS.items()}
