"""The thin synchronous client for every write the operator makes outside Kopf's own patching of the
object being handled (and the few reads that are no index). Every request is counted in
``finops_api_requests_total``; every write names the one field manager, so
`kubectl get -o yaml --show-managed-fields` and Argo CD can tell the operator's changes from the user's.

Generic over kinds: an object is named by (apiVersion, kind, namespace, name) and ``RESOURCES`` maps the
kinds the operator touches to their REST path. Handlers reach the Kubernetes client only through this
module (``ApiException`` included), an import-linter contract says so.

Every request waits for a token of one ``TokenBucket`` (client-go's QPS/burst), so converging N
workloads takes about N / qps seconds however many threads write, and the API server sees a bounded
rate. ``in_parallel`` runs independent calls on a few writer threads, so that bound is reached even when
each request takes a round trip of tens of milliseconds.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, TypeVar, cast

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from finops_operator import metrics

__all__ = [
    "FIELD_MANAGER",
    "RESOURCES",
    "ApiException",
    "KubeClient",
    "PatchType",
    "TokenBucket",
    "resource_path",
]

FIELD_MANAGER = "finops-operator"
DEFAULT_QPS = 50.0
DEFAULT_BURST = 100
"""Argo CD's application controller defaults (K8S_CLIENT_QPS / K8S_CLIENT_BURST): client-go's own 5/10
would take 400 s to converge 1,000 workloads; the API server's priority and fairness still protects
itself from a higher setting."""
IN_FLIGHT = 16
"""Writer threads of ``in_parallel``: enough to reach the rate at ~300 ms per request."""
THROTTLE_LOG_SECONDS = 1.0
"""A wait this long is logged at debug level (client-go logs it too), so a too-low QPS can be seen."""

_log = logging.getLogger(__name__)
R = TypeVar("R")

RESOURCES: Mapping[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Pod"): ("pods", True),
    ("v1", "Secret"): ("secrets", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): ("validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): (
        "mutatingwebhookconfigurations",
        False,
    ),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): (
        "validatingwebhookconfigurations",
        False,
    ),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): (
        "validatingadmissionpolicybindings",
        False,
    ),
}
"""(apiVersion, kind) -> (plural, namespaced) of every kind the operator writes."""

PatchType = Literal["merge", "strategic"]
_CONTENT_TYPES: Mapping[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> tuple[str, str]:
    """(REST path, plural) of one object, or of the collection when ``name`` is None."""
    plural, namespaced = RESOURCES[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
    return (f"{path}/{name}" if name is not None else path), plural


class TokenBucket:
    """client-go's token bucket: up to ``burst`` requests at once, then ``qps`` per second on average.

    Thread-safe. A caller finding no token reserves the next one (the count goes negative) and sleeps
    until it is due, outside the lock: waiting callers are served in the order they came, and the long
    run rate is exactly ``qps``. The clock and the sleep are arguments, so tests pin them."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not qps > 0 or burst < 1:
            raise ValueError(f"a token bucket needs qps > 0 and burst >= 1, not qps={qps}, burst={burst}")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next token: seconds until it may be used (0 when one was there)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.qps)
            self._updated = now
            self._tokens -= 1
            return max(0.0, -self._tokens / self.qps)

    def wait(self) -> float:
        """Block the calling thread (never the event loop: the client is only used from threads)
        until a token is due; the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay


class KubeClient:
    """The API calls handlers make, each counted, each paced by ``limiter``, each write under
    FIELD_MANAGER."""

    def __init__(self, api: client.ApiClient, *, limiter: TokenBucket | None = None) -> None:
        self.api = api
        self.limiter = limiter or TokenBucket(DEFAULT_QPS, DEFAULT_BURST)
        self._writers: ThreadPoolExecutor | None = None
        self._writers_lock = threading.Lock()

    @classmethod
    def from_environment(cls, *, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> KubeClient:
        """In-cluster service account when present, else KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        configuration = client.Configuration.get_default_copy()
        # One pooled connection per writer thread and per reconcile thread; urllib3's default (5 per
        # CPU) would open and drop a connection per request beyond it.
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, 2 * IN_FLIGHT)
        return cls(client.ApiClient(configuration), limiter=TokenBucket(qps, burst))

    def in_parallel(self, calls: Sequence[Callable[[], R]]) -> list[Future[R]]:
        """Start independent ``calls`` on the writer threads (each still paced by the limiter), each in
        a copy of the caller's context; a single call runs at once in the caller's thread."""
        if len(calls) == 1:
            done: Future[R] = Future()
            try:
                done.set_result(calls[0]())
            except BaseException as error:  # handed to the caller through the future, as a pool would
                done.set_exception(error)
            return [done]
        with self._writers_lock:
            if self._writers is None:
                self._writers = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="finops-write")
            writers = self._writers
        return [writers.submit(contextvars.copy_context().run, call) for call in calls]

    # --- the generic verbs ---------------------------------------------------------------------------

    def _request(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        body: object = None,
        query: tuple[tuple[str, str], ...] = (),
        content_type: str | None = None,
    ) -> dict[str, Any]:
        waited = self.limiter.wait()
        if waited >= THROTTLE_LOG_SECONDS:
            _log.debug(
                "waited %.1fs for client-side throttling (qps %g): %s %s",
                waited,
                self.limiter.qps,
                verb,
                resource,
            )
        metrics.record_api_request(verb, resource)
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()  # type: ignore[no-untyped-call]
        text = (response.data or b"").decode()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return cast("dict[str, Any]", json.loads(text)) if text else {}

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (forced): the operator owns exactly the fields it sends, and nothing else."""
        metadata = manifest["metadata"]
        path, plural = resource_path(
            manifest["apiVersion"], manifest["kind"], metadata.get("namespace") or "", metadata["name"]
        )
        return self._request(
            "apply",
            plural,
            "PATCH",
            path,
            body=dict(manifest),
            query=(("fieldManager", FIELD_MANAGER), ("force", "true")),
            content_type=_CONTENT_TYPES["apply"],
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        body: Mapping[str, Any],
        patch_type: PatchType = "strategic",
    ) -> dict[str, Any]:
        path, plural = resource_path(api_version, kind, namespace, name)
        return self._request(
            "patch",
            plural,
            "PATCH",
            path,
            body=dict(body),
            query=(("fieldManager", FIELD_MANAGER),),
            content_type=_CONTENT_TYPES[patch_type],
        )

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        metadata = manifest["metadata"]
        path, plural = resource_path(
            manifest["apiVersion"], manifest["kind"], metadata.get("namespace") or ""
        )
        return self._request(
            "create", plural, "POST", path, body=dict(manifest), query=(("fieldManager", FIELD_MANAGER),)
        )

    def replace(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: with ``metadata.resourceVersion`` set, refused (409) if the object changed since."""
        metadata = manifest["metadata"]
        path, plural = resource_path(
            manifest["apiVersion"], manifest["kind"], metadata.get("namespace") or "", metadata["name"]
        )
        return self._request(
            "update", plural, "PUT", path, body=dict(manifest), query=(("fieldManager", FIELD_MANAGER),)
        )

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        path, plural = resource_path(api_version, kind, namespace, name)
        try:
            return self._request("get", plural, "GET", path)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        path, plural = resource_path(api_version, kind, namespace, name)
        self._request("delete", plural, "DELETE", path)

    def evict(self, namespace: str, name: str) -> None:
        """A policy/v1 Eviction: the API server honours PodDisruptionBudgets (429 when one forbids it)."""
        path, _ = resource_path("v1", "Pod", namespace, name)
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        self._request("create", "pods/eviction", "POST", f"{path}/eviction", body=body)

    def post_event(self, regarding: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """An Event on ``regarding`` (a body or an apiVersion/kind/metadata reference), posted by Kopf's
        event poster (batched off this thread, same reporting component as Kopf's own Events)."""
        metrics.record_api_request("create", "events")
        kopf.event(cast("kopf.Body", regarding), type=type, reason=reason, message=message)

    # --- reads that are no index ------------------------------------------------------------------------

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        path, plural = resource_path("v1", "Secret", namespace, name)
        secret = self._request("get", plural, "GET", path)
        data = (secret.get("data") or {}).get(key)
        if data is None:
            raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data).decode().strip()

    def list_cluster_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        result = self._request("list", plural, "GET", f"/apis/{group}/{version}/{plural}")
        return list(result.get("items", []))
