"""Argo CD and the Go programs that read our status the way GitOps tools do, as ``GoTool`` builds.

* ``ARGOCD``: Argo CD's multi-call binary (application-controller, repo-server), for the end-to-end
  test against the local control plane.
* ``ARGO_LUA``: a tiny program around Argo CD's own Lua evaluator (``util/lua``), so health and
  action scripts are tested exactly as the controller runs them, with its restricted libraries.
* ``KSTATUS``: a tiny program around ``sigs.k8s.io/cli-utils/pkg/kstatus``, the status reader Flux and
  kpt use.
"""

from __future__ import annotations

from importlib import resources

from finops_operator.devcluster.gotools import GoTool

ARGOCD_VERSION = "v2.14.21"
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v2"
CLI_UTILS_VERSION = "v0.37.2"


def _source(name: str) -> str:
    return resources.files("finops_operator.devcluster").joinpath("go", name).read_text()


ARGOCD = GoTool(
    name="argocd",
    module=ARGOCD_MODULE,
    version=ARGOCD_VERSION,
    package="",
    throwaway=True,
    main_from_module="cmd/main.go",
    ldflags=f"-s -w -X {ARGOCD_MODULE}/common.version={ARGOCD_VERSION.lstrip('v')}",
)

ARGO_LUA = GoTool(
    name="argo-lua",
    module=ARGOCD_MODULE,
    version=ARGOCD_VERSION,
    package="./cmd/argo-lua",
    throwaway=True,
    sources={"cmd/argo-lua/main.go": _source("argo_lua.go")},
)

KSTATUS = GoTool(
    name="kstatus",
    module="sigs.k8s.io/cli-utils",
    version=CLI_UTILS_VERSION,
    package="./cmd/kstatus",
    throwaway=True,
    sources={"cmd/kstatus/main.go": _source("kstatus.go")},
)
