"""A thin synchronous wrapper over the Kubernetes client for the writes the operator makes to objects
it does not own (Deployments, pods, Secrets). Every write names the operator's field manager, so
`kubectl get -o yaml --show-managed-fields` and Argo CD can tell its changes from the user's."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from finops_operator import metrics

FIELD_MANAGER = "finops-operator"


class KubeClient:
    """The API calls handlers make outside Kopf's own patching of the object being handled."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    @classmethod
    def from_environment(cls) -> KubeClient:
        """In-cluster service account when present, else KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

    def patch_deployment(
        self, namespace: str, name: str, replicas: int | None, annotations: Mapping[str, str | None]
    ) -> None:
        body: dict[str, object] = {"metadata": {"annotations": dict(annotations)}}
        if replicas is not None:
            body["spec"] = {"replicas": replicas}
        metrics.record_api_request("patch", "deployments")
        self.apps.patch_namespaced_deployment(name, namespace, body, field_manager=FIELD_MANAGER)

    def add_pod_finalizer(self, namespace: str, name: str, finalizer: str) -> None:
        """Strategic merge: ObjectMeta.finalizers merges, so other finalizers are kept."""
        try:
            metrics.record_api_request("patch", "pods")
            self.core.patch_namespaced_pod(
                name, namespace, {"metadata": {"finalizers": [finalizer]}}, field_manager=FIELD_MANAGER
            )
        except ApiException as error:
            if error.status != 404:  # gone already: nothing to track
                raise

    def remove_pod_finalizer(self, namespace: str, name: str, finalizer: str) -> None:
        try:
            metrics.record_api_request("patch", "pods")
            self.core.patch_namespaced_pod(
                name,
                namespace,
                {"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}},
                field_manager=FIELD_MANAGER,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        metrics.record_api_request("get", "secrets")
        secret = self.core.read_namespaced_secret(name, namespace)
        data = (secret.data or {}).get(key)
        if data is None:
            raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data).decode().strip()

    def list_cluster_objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        metrics.record_api_request("list", plural)
        api = client.CustomObjectsApi(self.core.api_client)
        result = cast("dict[str, Any]", api.list_cluster_custom_object(group, version, plural))
        return list(result.get("items", []))

    def apply_hpa(self, manifest: Mapping[str, Any]) -> None:
        """Server-side apply: the operator owns exactly the fields it sends, and nothing else."""
        metadata = manifest["metadata"]
        metrics.record_api_request("apply", "horizontalpodautoscalers")
        self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            metadata["name"],
            metadata["namespace"],
            dict(manifest),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def delete_hpa(self, namespace: str, name: str) -> None:
        try:
            metrics.record_api_request("delete", "horizontalpodautoscalers")
            self.autoscaling.delete_namespaced_horizontal_pod_autoscaler(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
