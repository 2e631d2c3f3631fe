"""Find or build the control-plane binaries.

Order of preference: an explicit directory (``KUBEBUILDER_ASSETS``), per-binary overrides
(``TEST_ASSET_KUBE_APISERVER`` and friends, as envtest names them), ``PATH``, the cache under
``~/.cache/finops-operator/bin``, and finally a build from source through the Go module proxy.
No GitHub download and no container image is ever needed, which is what makes the control plane
work on machines that only reach package registries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.32.4"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.7.0"

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ALL_BINARIES = ("etcd", *KUBERNETES_BINARIES, "kwok")

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(f"[finops dev] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finops-operator" / "bin"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One build into the cache at a time, across processes (parallel test workers, a `make demo`
    beside a test run): the second waits, then finds the first one's binaries."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with (cache_root() / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the local control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path

    def as_dict(self) -> dict[str, str]:
        return {name.replace("_", "-"): str(path) for name, path in self.__dict__.items()}


class BuildError(RuntimeError):
    """A binary is missing and could not be built; the message says which command failed."""


def _env_override(name: str, env: Mapping[str, str]) -> Path | None:
    key = "TEST_ASSET_" + name.upper().replace("-", "_")
    value = env.get(key)
    if value and Path(value).is_file():
        return Path(value)
    assets = env.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / name).is_file():
        return Path(assets) / name
    return None


def _cached_path(name: str) -> Path:
    if name == "etcd":
        return cache_root() / f"etcd-{ETCD_VERSION}" / "etcd"
    if name == "kwok":
        return cache_root() / f"kwok-{KWOK_VERSION}" / "kwok"
    return cache_root() / f"kubernetes-{KUBERNETES_VERSION}" / name


def _path_binary_ok(name: str, path: Path) -> bool:
    """Accept a binary from PATH only when its version matches what we pin (Kubernetes parts)."""
    if name == "kubectl":
        return True  # kubectl is client-only and skew-tolerant: any installed kubectl will do
    if name in KUBERNETES_BINARIES:
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return KUBERNETES_VERSION in out.stdout
    if name == "etcd":
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        match = re.search(r"etcd Version: 3\.(\d+)\.(\d+)", out.stdout)
        return match is not None and (int(match.group(1)), int(match.group(2))) >= (5, 13)
    return True


def locate(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Return an existing binary for ``name`` without building anything."""
    env = os.environ if env is None else env
    override = _env_override(name, env)
    if override:
        return override
    cached = _cached_path(name)
    if cached.is_file():
        return cached
    on_path = shutil.which(name, path=env.get("PATH"))
    if on_path and _path_binary_ok(name, Path(on_path)):
        return Path(on_path)
    return None


def run_command(cmd: list[str], cwd: Path, env: Mapping[str, str], progress: Progress) -> str:
    progress("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return proc.stdout


def go_env() -> dict[str, str]:
    if not shutil.which("go"):
        raise BuildError(
            "Go is not installed, and no control-plane binaries were found. Install Go (1.23+), or point "
            "KUBEBUILDER_ASSETS at a directory with etcd, kube-apiserver, kube-controller-manager and "
            "kube-scheduler, or set KUBECONFIG to an existing cluster."
        )
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOFLAGS", "-mod=mod")
    # Module downloads come from the proxy; the checksum database may be unreachable from
    # restricted networks, and the proxy's content is what we pin by version anyway.
    env.setdefault("GONOSUMDB", "*")
    env.setdefault("GONOSUMCHECK", "1")
    env.setdefault("GOSUMDB", "off")
    env["GOTOOLCHAIN"] = env.get("GOTOOLCHAIN", "auto")
    return env


def _staging_replaces(kubernetes_gomod: str, version: str) -> list[tuple[str, str]]:
    """Turn ``k8s.io/x => ./staging/src/k8s.io/x`` lines into ``k8s.io/x => k8s.io/x v0.Y.Z``."""
    minor_version = "v0" + version[2:]  # v1.32.4 -> v0.32.4
    modules = re.findall(r"^\s*(?:replace\s+)?(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)
    return [(module, minor_version) for module in sorted(set(modules))]


def _build_kubernetes(names: list[str], progress: Progress) -> None:
    env = go_env()
    out_dir = _cached_path("kube-apiserver").parent
    with tempfile.TemporaryDirectory(prefix="finops-k8s-build-") as scratch:
        work = Path(scratch)
        info = json.loads(
            run_command(
                ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
                work,
                env,
                progress,
            )
        )
        gomod = Path(info["GoMod"]).read_text()
        go_directive = re.search(r"^go (\S+)", gomod, re.M)
        replaces = _staging_replaces(gomod, KUBERNETES_VERSION)
        lines = [
            "module finops.dev/kubernetes-build",
            f"go {go_directive.group(1) if go_directive else '1.23'}",
            f"require k8s.io/kubernetes {KUBERNETES_VERSION}",
            *(f"replace {module} => {module} {version}" for module, version in replaces),
        ]
        (work / "go.mod").write_text("\n".join(lines) + "\n")
        (work / "tools.go").write_text(
            "//go:build tools\npackage tools\n\nimport (\n"
            + "".join(f'\t_ "k8s.io/kubernetes/cmd/{name}"\n' for name in KUBERNETES_BINARIES)
            + ")\n"
        )
        progress(f"resolving k8s.io/kubernetes {KUBERNETES_VERSION} with {len(replaces)} staging modules")
        run_command(["go", "mod", "tidy", "-e"], work, env, progress)
        major, minor = KUBERNETES_VERSION[1:].split(".")[:2]
        ldflags = " ".join(
            f"-X {pkg}.{key}={value}"
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for key, value in (
                ("gitVersion", KUBERNETES_VERSION),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitCommit", info.get("Origin", {}).get("Hash", "unknown")),
                ("gitTreeState", "clean"),
                ("buildDate", "1970-01-01T00:00:00Z"),
            )
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = out_dir / name
            progress(f"building {name} {KUBERNETES_VERSION} (several minutes on 2 cores)")
            partial = out_dir / f".{name}.partial"
            run_command(
                [
                    "go",
                    "build",
                    "-trimpath",
                    "-ldflags",
                    f"-s -w {ldflags}",
                    "-o",
                    str(partial),
                    f"k8s.io/kubernetes/cmd/{name}",
                ],
                work,
                env,
                progress,
            )
            partial.rename(target)


def _build_etcd(progress: Progress) -> None:
    env = go_env()
    target = _cached_path("etcd")
    with tempfile.TemporaryDirectory(prefix="finops-etcd-build-") as scratch:
        work = Path(scratch)
        (work / "go.mod").write_text(
            f"module finops.dev/etcd-build\n\ngo 1.23\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
        )
        (work / "tools.go").write_text(
            '//go:build tools\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n'
        )
        run_command(["go", "mod", "tidy", "-e"], work, env, progress)
        target.parent.mkdir(parents=True, exist_ok=True)
        progress(f"building etcd {ETCD_VERSION}")
        partial = target.parent / ".etcd.partial"
        ldflags = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}"
        run_command(
            [
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                str(partial),
                "go.etcd.io/etcd/server/v3",
            ],
            work,
            env,
            progress,
        )
        partial.rename(target)


def _build_kwok(progress: Progress) -> None:
    env = go_env()
    target = _cached_path("kwok")
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"building kwok {KWOK_VERSION}")
    env["GOBIN"] = str(target.parent)
    env.pop("GOFLAGS", None)
    run_command(
        ["go", "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"],
        target.parent,
        env,
        progress,
    )


def ensure_binaries(progress: Progress = stderr_progress, env: Mapping[str, str] | None = None) -> Binaries:
    """Return every binary, building the missing ones from source (cached by version)."""
    env = os.environ if env is None else env
    if any(locate(name, env) is None for name in ALL_BINARIES):
        with build_lock():
            _build_missing(progress, env)
    paths = {name: locate(name, env) for name in ALL_BINARIES}
    absent = [name for name, path in paths.items() if path is None]
    if absent:
        raise BuildError(f"still missing after build: {', '.join(absent)}")
    return Binaries(**{name.replace("-", "_"): path for name, path in paths.items() if path is not None})


def _build_missing(progress: Progress, env: Mapping[str, str]) -> None:
    found = {name: locate(name, env) for name in ALL_BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if not missing:
        return
    progress(
        f"missing binaries {', '.join(missing)}: building from source via the Go module proxy "
        f"into {cache_root()} (first time only)"
    )
    kubernetes_missing = [name for name in missing if name in KUBERNETES_BINARIES]
    if kubernetes_missing:
        _build_kubernetes(kubernetes_missing, progress)
    if "etcd" in missing:
        _build_etcd(progress)
    if "kwok" in missing:
        _build_kwok(progress)


if __name__ == "__main__":
    print(json.dumps(ensure_binaries().as_dict(), indent=2))
