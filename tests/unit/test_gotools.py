"""The throwaway module that builds Go tools with ``replace`` directives (Argo CD-style go.mod)."""

from __future__ import annotations

import pytest

from finops_operator.devcluster.gotools import GoTool, replace_lines, throwaway_gomod

GOMOD = """module github.com/example/target/v2

go 1.24.6

require (
\tgithub.com/a/b v1.0.0
)

replace (
\t// a comment line
\tgithub.com/golang/protobuf => github.com/golang/protobuf v1.5.4
\tk8s.io/api => k8s.io/api v0.31.2 // pinned
\tgithub.com/local/thing => ./hack/thing
)

replace github.com/single/one => github.com/single/one v0.2.0
"""


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        pytest.param("github.com/golang/protobuf => github.com/golang/protobuf v1.5.4", True, id="block"),
        pytest.param("k8s.io/api => k8s.io/api v0.31.2", True, id="trailing-comment-dropped"),
        pytest.param("github.com/single/one => github.com/single/one v0.2.0", True, id="single-line"),
        pytest.param("github.com/local/thing => ./hack/thing", False, id="local-path-dropped"),
    ],
)
def test_replace_lines(line: str, kept: bool) -> None:
    assert (line in replace_lines(GOMOD)) is kept


def test_throwaway_gomod_requires_the_target_with_its_go_version_and_replacements() -> None:
    tool = GoTool("t", "github.com/example/target/v2", "v2.1.0", "./cmd/t", throwaway=True)
    gomod = throwaway_gomod(tool, GOMOD)
    assert gomod.startswith("module finops.dev/tools/t\n\ngo 1.24.6\n")
    assert "require github.com/example/target/v2 v2.1.0\n" in gomod
    assert "\tk8s.io/api => k8s.io/api v0.31.2\n" in gomod
    assert "./hack" not in gomod


def test_no_replacements_no_block() -> None:
    tool = GoTool("h", "helm.sh/helm/v3", "v3.22.0", "helm.sh/helm/v3/cmd/helm", throwaway=True)
    assert "replace" not in throwaway_gomod(tool, "module helm.sh/helm/v3\n\ngo 1.26.0\n")


def test_a_tool_with_sources_is_cached_per_content_of_its_sources() -> None:
    def tool(source: str) -> GoTool:
        return GoTool(
            "t", "example.com/m", "v1.0.0", "./cmd/t", throwaway=True, sources={"cmd/t/main.go": source}
        )

    assert tool("a").path == tool("a").path
    assert tool("a").path != tool("b").path
    plain = GoTool("helm", "helm.sh/helm/v3", "v3.22.0", "helm.sh/helm/v3/cmd/helm")
    assert plain.path.parent.name == "helm-v3.22.0"
