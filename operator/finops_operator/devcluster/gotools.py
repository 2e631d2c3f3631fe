"""The other real tools the project is tested with (helm, Argo CD, kstatus, small Go test programs),
built from source through the Go module proxy and cached by name and version like the control plane.

Two ways to build, both without any download outside the module proxy:

* ``go install module/cmd@version`` for modules without ``replace`` directives (helm);
* a throwaway module that requires the target and copies its ``replace`` block, for modules that
  cannot be installed that way (Argo CD, anything importing Kubernetes' staging modules), optionally
  with Go sources of its own (a test program calling the target's packages).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from finops_operator.devcluster.binaries import (
    BuildError,
    Progress,
    build_lock,
    cache_root,
    go_env,
    run_command,
    stderr_progress,
)

_REPLACE_BLOCK = re.compile(r"^replace\s*\(\s*\n(.*?)^\)", re.M | re.S)
_REPLACE_LINE = re.compile(r"^replace\s+([^\s(].*)$", re.M)
_GO_DIRECTIVE = re.compile(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", re.M)


@dataclass(frozen=True)
class GoTool:
    """One binary to build: ``package`` from ``module`` at ``version``.

    ``throwaway`` builds it in a throwaway module (needed when the target has ``replace``
    directives); ``sources`` are extra files written into that module (relative path -> content), so
    ``package`` may be one of them (``./cmd/x``); ``main_from_module`` copies a file of the target
    module (relative to its root) to ``cmd/<name>/main.go`` and builds that (Argo CD's multi-call
    main). ``ldflags`` are passed to ``go build``/``go install``.
    """

    name: str
    module: str
    version: str
    package: str
    throwaway: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)
    main_from_module: str | None = None
    ldflags: str = "-s -w"

    @property
    def path(self) -> Path:
        """Where the binary is cached: one directory per name and version, and per content of
        ``sources`` (an edited test program is rebuilt, not served stale from the cache)."""
        key = f"{self.name}-{self.version}"
        if self.sources:
            digest = hashlib.sha256(json.dumps(dict(self.sources), sort_keys=True).encode()).hexdigest()
            key += f"-{digest[:12]}"
        return cache_root() / key / self.name


def replace_lines(gomod: str) -> list[str]:
    """The target's ``replace`` directives as single lines, without local-path replacements
    (``=> ./x`` or ``=> ../x``: their directories are not in the module zip)."""
    lines: list[str] = []
    for block in _REPLACE_BLOCK.findall(gomod):
        lines.extend(line.strip() for line in block.splitlines())
    lines.extend(line.strip() for line in _REPLACE_LINE.findall(gomod))
    kept = []
    for raw in lines:
        line = raw.split("//", 1)[0].strip()
        if not line or "=>" not in line:
            continue
        target = line.split("=>", 1)[1].strip()
        if target.startswith(("./", "../", "/")):
            continue
        kept.append(line)
    return kept


def throwaway_gomod(tool: GoTool, target_gomod: str) -> str:
    """go.mod of the throwaway module: requires the target, copies its replacements and Go version."""
    match = _GO_DIRECTIVE.search(target_gomod)
    go_version = match.group(1) if match else "1.23"
    replaces = "".join(f"\t{line}\n" for line in replace_lines(target_gomod))
    block = f"\nreplace (\n{replaces})\n" if replaces else ""
    return (
        f"module finops.dev/tools/{tool.name}\n\ngo {go_version}\n\n"
        f"require {tool.module} {tool.version}\n{block}"
    )


def ensure_tool(tool: GoTool, progress: Progress = stderr_progress) -> Path:
    """Return the cached binary, building it first if it is not there yet."""
    if tool.path.is_file():
        return tool.path
    with build_lock():
        if tool.path.is_file():  # built by another process while this one waited
            return tool.path
        return _build(tool, progress)


def _build(tool: GoTool, progress: Progress) -> Path:
    if not shutil.which("go"):
        raise BuildError(f"Go is needed to build {tool.name} {tool.version} from source; install Go 1.23+")
    env = go_env()
    tool.path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"building {tool.name} {tool.version} from source (first time only, cached in {tool.path})")
    if not tool.throwaway:
        env["GOBIN"] = str(tool.path.parent)
        env.pop("GOFLAGS", None)
        run_command(
            ["go", "install", "-trimpath", "-ldflags", tool.ldflags, f"{tool.package}@{tool.version}"],
            tool.path.parent,
            env,
            progress,
        )
        if not tool.path.is_file():
            raise BuildError(f"go install produced no {tool.path}")
        return tool.path
    work = tool.path.parent / "module"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    info = json.loads(
        run_command(["go", "mod", "download", "-json", f"{tool.module}@{tool.version}"], work, env, progress)
    )
    (work / "go.mod").write_text(throwaway_gomod(tool, Path(info["GoMod"]).read_text()))
    package = tool.package
    if tool.main_from_module:
        main = work / "cmd" / tool.name / "main.go"
        main.parent.mkdir(parents=True)
        shutil.copyfile(Path(info["Dir"]) / tool.main_from_module, main)
        package = f"./cmd/{tool.name}"
    for relative, content in tool.sources.items():
        source = work / relative
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(content)
    run_command(["go", "mod", "tidy", "-e"], work, env, progress)
    partial = tool.path.with_name(f".{tool.name}.partial")
    run_command(
        ["go", "build", "-trimpath", "-ldflags", tool.ldflags, "-o", str(partial), package],
        work,
        env,
        progress,
    )
    partial.rename(tool.path)
    shutil.rmtree(work, ignore_errors=True)
    return tool.path
