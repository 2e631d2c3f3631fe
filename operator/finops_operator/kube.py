"""The thin synchronous client for every write the operator makes outside Kopf's own patching of the
object being handled (and the few reads that are no index). Every request is counted in
``finops_api_requests_total``; every write names the one field manager, so
`kubectl get -o yaml --show-managed-fields` and Argo CD can tell the operator's changes from the user's.

Generic over kinds: an object is named by (apiVersion, kind, namespace, name) and ``RESOURCES`` maps the
kinds the operator touches to their REST path. Handlers reach the Kubernetes client only through this
module (``ApiException`` included), an import-linter contract says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal, cast

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from finops_operator import metrics

__all__ = ["FIELD_MANAGER", "RESOURCES", "ApiException", "KubeClient", "PatchType", "resource_path"]

FIELD_MANAGER = "finops-operator"

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


class KubeClient:
    """The API calls handlers make, each counted, each write under FIELD_MANAGER."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    def from_environment(cls) -> KubeClient:
        """In-cluster service account when present, else KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

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
