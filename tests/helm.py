"""The real ``helm`` binary for tests: built from source through the Go module proxy by the project's
builder (``finops_operator.devcluster.gotools``) and cached like the control plane.

A test that needs helm fails when it cannot be built (no Go, no proxy): it never skips, so CI cannot
pass without having run the chart tests.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from finops_operator.devcluster.gotools import GoTool, ensure_tool
from tests.kube import REPO

HELM = GoTool("helm", "helm.sh/helm/v3", "v3.22.0", "helm.sh/helm/v3/cmd/helm")
CHART = REPO / "deploy" / "helm" / "finops-operator"
# `go install` does not stamp the Kubernetes version Helm's own Makefile sets with -ldflags, so an
# offline render would assume v1.20 and fail the chart's kubeVersion; renders say the version of the
# local control plane instead. Commands that talk to a cluster use the cluster's real version.
KUBE_VERSION = "1.32.4"


class HelmError(AssertionError):
    """helm failed; carries its stderr so tests can assert on what a user would see."""

    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


@cache
def helm_binary() -> Path:
    return ensure_tool(HELM, progress=lambda message: print(f"[helm] {message}"))


def helm(*args: str, env: Mapping[str, str] | None = None, timeout: float = 180) -> str:
    proc = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        raise HelmError(args, proc.stderr)
    return proc.stdout


def set_args(values: Mapping[str, Any]) -> list[str]:
    """``--set-json key=<json>`` per value, so strings, lists and objects arrive exactly as given."""
    import json

    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "finops-operator",
    namespace: str = "finops-system",
) -> str:
    """``helm template`` of the chart with ``values`` (dotted keys), as the YAML text."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *set_args(values or {}),
    )


def render_objects(values: Mapping[str, Any] | None = None, **kwargs: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render(values, **kwargs)) if doc]


# The CRDs of the chart's optional integrations, read from the projects' own Go modules (fetched
# through the Go module proxy like every other tool), so a server-side dry run validates our
# ServiceMonitor, PrometheusRule and cert-manager objects against their real schemas.
INTEGRATION_CRDS = {
    "github.com/prometheus-operator/prometheus-operator@v0.79.2": (
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    "github.com/cert-manager/cert-manager@v1.16.5": (
        "deploy/crds/crd-certificates.yaml",
        "deploy/crds/crd-issuers.yaml",
    ),
}


def integration_crds() -> list[dict[str, Any]]:
    """The CRDs above, without metadata.labels: cert-manager's files are also its chart's templates,
    and their label values are `{{ template }}` placeholders (the schema is plain YAML)."""
    import json

    from finops_operator.devcluster.binaries import go_env

    crds = []
    for module, paths in INTEGRATION_CRDS.items():
        proc = subprocess.run(
            ["go", "mod", "download", "-json", module],
            capture_output=True,
            text=True,
            env=go_env(),
            timeout=600,
            check=True,
        )
        directory = Path(json.loads(proc.stdout)["Dir"])
        for path in paths:
            crd = yaml.safe_load((directory / path).read_text())
            crd["metadata"].pop("labels", None)
            crds.append(crd)
    return crds
