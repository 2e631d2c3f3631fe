"""Our Argo CD resource customizations (deploy/argocd, in Argo CD's own layout) run with Argo CD's own
Lua evaluator: ``argo-lua``, a small program around ``argo-cd/v2/util/lua`` built through the Go module
proxy and cached like the control plane, with the restricted libraries argocd-cm scripts get."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from finops_operator.devcluster.argocd import ARGO_LUA
from finops_operator.devcluster.gotools import ensure_tool
from tests.kube import REPO

CUSTOMIZATIONS = REPO / "deploy" / "argocd" / "resource_customizations"
KINDS = ("FinOpsPolicy", "SovereignRegion", "EdgeFleet")


def kind_dir(kind: str) -> Path:
    return CUSTOMIZATIONS / "finops.dev" / kind


@functools.cache
def argo_lua() -> Path:
    """The evaluator binary, built on first use (a missing Go toolchain fails loudly, never skips)."""
    return ensure_tool(ARGO_LUA)


def _run(command: str, script: Path, obj: Path) -> Any:
    proc = subprocess.run(
        [str(argo_lua()), command, str(script), str(obj)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise AssertionError(f"argo-lua {command} {script} {obj}: {proc.stderr}")
    return json.loads(proc.stdout)


def health(kind: str, obj: Path) -> dict[str, str]:
    """What Argo CD shows for ``obj``: {"status": ..., "message": ...}."""
    return dict(_run("health", kind_dir(kind) / "health.lua", obj))


def health_of(kind: str, obj: dict[str, Any], scratch: Path) -> dict[str, str]:
    path = scratch / f"{kind}-{obj['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(obj))
    return health(kind, path)


def discovery(actions: Path, obj: Path) -> dict[str, bool]:
    """Action name -> disabled, as the Argo CD UI would list them for ``obj``."""
    return {
        a["name"]: bool(a.get("disabled", False)) for a in _run("discovery", actions / "discovery.lua", obj)
    }


def run_action(actions: Path, name: str, obj: Path) -> list[dict[str, Any]]:
    """The impacted resources of action ``name`` on ``obj``: [{"operation", "resource"}]."""
    return list(_run("action", actions / name / "action.lua", obj))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


ARGOCD_CM = REPO / "deploy" / "argocd" / "argocd-cm.yaml"
ACTION_KINDS = {
    "finops.dev_EdgeFleet": ("finops.dev", "EdgeFleet"),
    "apps_Deployment": ("apps", "Deployment"),
}
"""argocd-cm key -> resource_customizations directory of the kinds with custom actions."""
MERGED_WITH_BUILTIN = {"apps_Deployment"}
"""Argo CD has its own Deployment actions (restart, pause, resume, scale): ours are added to them."""


class _Literal(str):
    """A string dumped as a YAML literal block, so scripts stay readable in the ConfigMap."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _actions(directory: Path, merge: bool) -> str:
    definitions = [
        {"name": d.name, "action.lua": _Literal((d / "action.lua").read_text())}
        for d in sorted(directory.iterdir())
        if (d / "action.lua").is_file()
    ]
    value: dict[str, Any] = {
        **({"mergeBuiltinActions": True} if merge else {}),
        "discovery.lua": _Literal((directory / "discovery.lua").read_text()),
        "definitions": definitions,
    }
    return _Literal(yaml.dump(value, Dumper=_Dumper, sort_keys=False))


def argocd_cm() -> str:
    """The argocd-cm snippet, rendered from the scripts (the one source of truth)."""
    data: dict[str, str] = {}
    for kind in KINDS:
        data[f"resource.customizations.health.finops.dev_{kind}"] = _Literal(
            (kind_dir(kind) / "health.lua").read_text()
        )
    for key, (group, kind) in ACTION_KINDS.items():
        data[f"resource.customizations.actions.{key}"] = _actions(
            CUSTOMIZATIONS / group / kind / "actions", key in MERGED_WITH_BUILTIN
        )
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
        },
        "data": data,
    }
    header = (
        "# Health checks and actions for finops.dev kinds: merge `data` into your argocd-cm.\n"
        "# Generated from resource_customizations/ by `python -m tests.argocd_lua` (a unit test checks).\n"
        "# Written for argocd-cm's restricted Lua (no useOpenLibs needed).\n"
    )
    return header + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=200)


if __name__ == "__main__":
    ARGOCD_CM.write_text(argocd_cm())
