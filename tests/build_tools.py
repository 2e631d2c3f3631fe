"""Build (or find in the cache) every binary the test suite runs, before pytest starts.

`make test` calls this first, so parallel test workers only ever find the binaries: on a cold
machine the builds (about 23 minutes on 2 cores) run here, one at a time, rather than inside a
test's setup, under its timeout. Later runs find everything cached and return at once.

    python -m tests.build_tools
"""

from __future__ import annotations

from finops_operator.devcluster.argocd import ARGO_LUA, ARGOCD, KSTATUS
from finops_operator.devcluster.binaries import ensure_binaries
from finops_operator.devcluster.gotools import ensure_tool
from tests.helm import HELM


def main() -> None:
    ensure_binaries()
    for tool in (ARGOCD, ARGO_LUA, KSTATUS, HELM):
        print(ensure_tool(tool))


if __name__ == "__main__":
    main()
