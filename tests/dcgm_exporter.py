"""A stand-in for NVIDIA's DCGM exporter, for tests on machines without a GPU.

The GPU is simulated: there is no GPU here, and the utilisation figures are whatever the test sets.
Everything downstream is real: this serves ``/metrics`` over HTTP in the Prometheus text format with
the series names and labels dcgm-exporter uses on Kubernetes (``DCGM_FI_DEV_GPU_UTIL`` etc. with
``namespace``/``pod``/``container`` of the pod the GPU is assigned to), a real Prometheus scrapes it,
and the operator's PromQL runs against what Prometheus stored.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

MODEL_NAME = "NVIDIA A100-SXM4-80GB"
FB_TOTAL_MIB = 81920
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRICS = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
)


@dataclass(frozen=True)
class SimulatedGpu:
    """One GPU on the simulated node; ``pod`` is None while no pod holds it (dcgm-exporter then
    omits the pod labels, which is how idle, unallocated GPUs look in a real cluster)."""

    index: int
    utilization: float
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None

    @property
    def uuid(self) -> str:
        digest = hashlib.sha256(f"{self.index}/{self.namespace}/{self.pod}".encode()).hexdigest()
        return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    @property
    def fb_used_mib(self) -> int:
        # Memory loosely follows load, so the memory series move when a test changes utilisation.
        return int(FB_TOTAL_MIB * min(max(self.utilization, 0.0), 100.0) / 100)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class DcgmExporter:
    """Serve DCGM-style GPU metrics for pods the test declares; thread-safe, so a test can change
    utilisation while Prometheus scrapes.

    Use as a context manager (or ``start``/``stop``); ``port`` is chosen by the OS and ``target`` is
    the ``host:port`` to put in a Prometheus scrape config.
    """

    def __init__(self, hostname: str = "gpu-node-0", unassigned_gpus: int = 0) -> None:
        self.hostname = hostname
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], list[SimulatedGpu]] = {}
        self._unassigned = unassigned_gpus
        self._scrapes = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- simulated state -------------------------------------------------------------------------------

    def set_utilization(
        self, namespace: str, pod: str, utilization: float | Sequence[float], *, container: str = "main"
    ) -> None:
        """Give ``pod`` one GPU per value (a bare number means one GPU) at these utilisations (percent).

        GPU indices stay stable for a pod that keeps its GPU count, like a real device assignment.
        """
        values = (
            [float(utilization)] if isinstance(utilization, int | float) else [float(u) for u in utilization]
        )
        if not values:
            raise ValueError("a pod needs at least one GPU; use remove_pod to take it away")
        with self._lock:
            current = self._pods.get((namespace, pod), [])
            if len(current) == len(values):
                indices = [gpu.index for gpu in current]
            else:
                self._pods.pop((namespace, pod), None)
                taken = {gpu.index for gpus in self._pods.values() for gpu in gpus}
                free = (i for i in range(self._unassigned, 1 << 16) if i not in taken)
                indices = [next(free) for _ in values]
            self._pods[(namespace, pod)] = [
                SimulatedGpu(i, value, namespace, pod, container)
                for i, value in zip(indices, values, strict=True)
            ]

    def remove_pod(self, namespace: str, pod: str) -> None:
        """The pod is gone: its series stop being exported, so Prometheus marks them stale."""
        with self._lock:
            self._pods.pop((namespace, pod), None)

    def gpus(self) -> list[SimulatedGpu]:
        with self._lock:
            idle = [SimulatedGpu(i, 0.0) for i in range(self._unassigned)]
            return idle + sorted((g for gpus in self._pods.values() for g in gpus), key=lambda g: g.index)

    @property
    def scrapes(self) -> int:
        """How many times /metrics was served; lets a test wait for a scrape after a change."""
        with self._lock:
            return self._scrapes

    def render(self) -> str:
        """The /metrics body, in the Prometheus text exposition format (0.0.4)."""
        gpus = self.gpus()
        lines: list[str] = []
        for name, help_text in _METRICS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for gpu in gpus:
                value = {
                    "DCGM_FI_DEV_GPU_UTIL": gpu.utilization,
                    "DCGM_FI_DEV_FB_USED": gpu.fb_used_mib,
                    "DCGM_FI_DEV_FB_FREE": FB_TOTAL_MIB - gpu.fb_used_mib,
                }[name]
                lines.append(f"{name}{{{self._labels(gpu)}}} {_number(value)}")
        return "\n".join(lines) + "\n"

    def _labels(self, gpu: SimulatedGpu) -> str:
        labels = {
            "gpu": str(gpu.index),
            "UUID": gpu.uuid,
            "device": f"nvidia{gpu.index}",
            "modelName": MODEL_NAME,
            "Hostname": self.hostname,
        }
        if gpu.pod is not None:
            labels |= {"namespace": gpu.namespace or "", "pod": gpu.pod, "container": gpu.container or ""}
        return ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())

    # -- HTTP server -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the exporter is not running")
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the exporter is already running")
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so no keep-alive thread outlives a scrape.
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                with exporter._lock:
                    exporter._scrapes += 1
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per scrape per second would drown the test output

        server = _Server(("127.0.0.1", 0), Handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"dcgm-exporter:{self.port}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the serving thread and every request thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()  # joins request threads (block_on_close)
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # Non-daemon request threads are tracked and joined by server_close, so none leak past stop().
    daemon_threads = False
    block_on_close = True
