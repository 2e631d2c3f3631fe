"""Operator settings from environment (FINOPS_*) and command-line flags, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the operator reads from its environment. Flags override environment variables."""

    model_config = SettingsConfigDict(env_prefix="FINOPS_", extra="forbid", frozen=True)

    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch for namespaced kinds; empty means cluster-wide."""
    prometheus_url: AnyHttpUrl | None = None
    """Prometheus base URL for GPU utilisation and demand history; unset disables metric-driven features."""
    gpu_utilization_query: str = (
        'avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{namespace="$namespace", exported_namespace=""} or '
        'label_replace(label_replace(DCGM_FI_DEV_GPU_UTIL{exported_namespace="$namespace"}, '
        '"namespace", "$1", "exported_namespace", "(.+)"), "pod", "$1", "exported_pod", "(.+)"))'
    )
    """PromQL for per-pod GPU utilisation (percent), with `namespace` and `pod` labels in the result.
    $namespace is substituted per policy. The default reads dcgm-exporter's pod labels as they are
    and as `exported_namespace`/`exported_pod` (a ServiceMonitor with honorLabels: false)."""
    sample_interval_seconds: float = Field(default=60, ge=1, le=3600)
    """How often GPU-hours are accounted and policies re-evaluated."""
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the operator's own Prometheus metrics (0 disables)."""
    health_port: int = Field(default=8081, ge=0, le=65535)
    """Port of the liveness endpoint (0 disables)."""
    webhook_enabled: bool = False
    """Serve the validating admission webhook."""
    webhook_host: str = "127.0.0.1"
    """Address the webhook listens on (0.0.0.0 in a cluster)."""
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    """Port the webhook listens on."""
    webhook_cert_dir: Path | None = None
    """Directory with tls.crt and tls.key (and ca.crt); generated there when missing and reused on the
    next start. Unset: generated into a temporary directory removed when the operator exits (local only)."""
    webhook_cert_secret: str | None = None
    """A kubernetes.io/tls Secret in the operator's namespace that every replica serves the same
    certificate from (so the caBundle any replica writes is trusted for all of them): created by
    the first replica to start when webhook_cert_dir holds no certificate, read by the others.
    Unset: each process makes its own (one replica only)."""
    webhook_service: str | None = None
    """Service name/namespace ("name.namespace") the API server reaches the webhook through; unset uses
    the host/port URL, which only works for a local API server."""
    webhook_failure_policy: Literal["Fail", "Ignore"] = "Fail"
    """What the API server does when the webhook is unreachable (see docs/ADMISSION.md)."""
    webhook_timeout_seconds: int = Field(default=3, ge=1, le=10)
    """How long the API server waits for an answer before the failure policy applies: a hung
    operator delays a create in a namespace it serves by at most this long (Gatekeeper uses 3)."""
    webhook_exempt_namespaces: list[str] = Field(default_factory=list)
    """Namespaces the webhooks are never called for, beyond kube-system, kube-node-lease, kube-public
    and the operator's own (a JSON list, as FINOPS_NAMESPACES)."""
    operator_namespace: str | None = None
    """The namespace the operator runs in (in a cluster, from the downward API): never called for
    admission there, so the operator's own pods never wait on it. Defaults to webhook_service's."""
    leader_election: bool = False
    """Run as one of several replicas: only the holder of the Lease ``lease_name`` (in the operator's
    namespace) reconciles and writes; the others serve admission from their own watch indexes and
    take over when the Lease expires (see docs/ADMISSION.md, "High availability")."""
    lease_name: str = "finops-operator"
    """The coordination.k8s.io/v1 Lease the replicas elect their leader with."""
    lease_duration_seconds: int = Field(default=15, ge=3, le=300)
    """How long a Lease not renewed stays held: the bound on takeover after the leader dies."""
    standalone: bool = True
    """Run without Kopf peering (a single replica, or leader election by Deployment strategy)."""
    alert_allow_private_urls: bool = False
    """Let alert webhook URLs use plain http and loopback, link-local or private addresses (a receiver
    in the cluster); off, only https to public addresses. Cloud metadata addresses are always refused."""
    client_qps: float = Field(default=50, gt=0, le=10_000)
    """Requests per second the operator's own API client makes on average (every write to workloads,
    HPAs, pods, admission configurations), as client-go's QPS: converging N workloads takes about
    N / client_qps seconds. Kopf's watches and status patches are not counted against it."""
    client_burst: int = Field(default=100, ge=1, le=100_000)
    """Requests the client may make at once above client_qps before it is held to that rate."""
    log_format: Literal["plain", "full", "json"] = "full"
    """Log format: plain, full (with timestamps and object references) or json."""
    log_level: Literal["debug", "info", "warning"] = "info"
    """Log level."""

    @model_validator(mode="after")
    def _webhook_needs_a_route(self) -> Settings:
        if self.webhook_enabled and self.webhook_service and "." not in self.webhook_service:
            raise ValueError("webhook_service must be 'name.namespace'")
        if self.webhook_cert_secret and not self.own_namespace:
            raise ValueError("webhook_cert_secret needs operator_namespace (the Secret lives there)")
        if self.leader_election and not self.own_namespace:
            raise ValueError("leader_election needs operator_namespace (the Lease lives there)")
        return self

    @property
    def own_namespace(self) -> str | None:
        """The operator's namespace: set explicitly, else the webhook Service's."""
        if self.operator_namespace:
            return self.operator_namespace
        return self.webhook_service.split(".", 1)[1] if self.webhook_service else None


class SettingsError(ValueError):
    """Raised with one readable line per invalid setting."""


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides (flags); errors name the variable."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"]) or "settings"
            env = f"FINOPS_{name.upper()}" if problem["loc"] else ""
            lines.append(f"{name}{f' ({env})' if env else ''}: {problem['msg']}")
        raise SettingsError("invalid operator settings:\n  " + "\n  ".join(lines)) from None
