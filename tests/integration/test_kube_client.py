"""The thin client against a real API server: every verb the apply module uses, one field manager,
every request counted in finops_api_requests_total."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from finops_operator import metrics
from finops_operator.handlers.apply import apply_intents
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import FIELD_MANAGER, KubeClient, TokenBucket
from finops_operator.planners.plan import (
    AddFinalizer,
    CreateObject,
    DeleteObject,
    Intent,
    ObjectRef,
    RemoveFinalizer,
)
from tests.kube import Kube, eventually

NAMESPACE = "kube-client-test"


def requests(verb: str, resource: str) -> float:
    return metrics.API_REQUESTS.labels(verb=verb, resource=resource)._value.get()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def thin(kube: Kube) -> Iterator[KubeClient]:
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    yield KubeClient(api)
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def write(intents: list[Intent], thin: KubeClient) -> None:
    """Through the apply module, as the handlers write: every intent must succeed."""
    done = apply_intents(
        thin, intents, owner={}, recent=RecentWrites(ttl=0), logger=logging.getLogger(__name__)
    )
    assert [applied.error for applied in done] == [None] * len(intents)


def deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "example/app:1"}]},
            },
        },
    }


def test_apply_patch_and_delete_a_deployment_under_one_field_manager(kube: Kube, thin: KubeClient) -> None:
    before = requests("apply", "deployments"), requests("patch", "deployments")
    applied = thin.apply(deployment("thin-a", 2))
    assert applied["metadata"]["generation"] >= 1
    thin.patch(
        "apps/v1",
        "Deployment",
        NAMESPACE,
        "thin-a",
        body={"metadata": {"annotations": {"finops.dev/test": "1"}}, "spec": {"replicas": 1}},
    )
    thin.patch(
        "apps/v1",
        "Deployment",
        NAMESPACE,
        "thin-a",
        body={"spec": {"template": {"spec": {"nodeSelector": {"a": "b"}}}}},
        patch_type="merge",
    )
    stored = kube.get_json("deployment", "-n", NAMESPACE, "thin-a", "--show-managed-fields")
    assert stored["spec"]["replicas"] == 1
    assert stored["metadata"]["annotations"]["finops.dev/test"] == "1"
    assert stored["spec"]["template"]["spec"]["nodeSelector"] == {"a": "b"}
    spec_managers = {
        m["manager"] for m in stored["metadata"]["managedFields"] if m.get("subresource") != "status"
    }
    assert spec_managers == {FIELD_MANAGER}
    assert (requests("apply", "deployments"), requests("patch", "deployments")) == (
        before[0] + 1,
        before[1] + 2,
    )
    thin.delete("apps/v1", "Deployment", NAMESPACE, "thin-a")
    with pytest.raises(ApiException) as gone:
        thin.delete("apps/v1", "Deployment", NAMESPACE, "thin-a")
    assert gone.value.status == 404


def test_create_conflicts_when_the_object_exists(thin: KubeClient) -> None:
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "thin-rev", "namespace": NAMESPACE},
        "data": {"k": "v"},
        "revision": 1,
    }
    before = requests("create", "controllerrevisions")
    assert thin.create(revision)["revision"] == 1
    with pytest.raises(ApiException) as exists:
        thin.create(revision)
    assert exists.value.status == 409
    assert requests("create", "controllerrevisions") == before + 2


def test_cluster_scoped_apply(kube: Kube, thin: KubeClient) -> None:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "thin-client-test"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "validations": [{"expression": "true"}],
        },
    }
    thin.apply(policy)
    assert kube.get_json("validatingadmissionpolicy", "thin-client-test")["spec"]["failurePolicy"] == "Fail"
    thin.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "", "thin-client-test")


def test_finalizers_and_eviction_of_a_pod(kube: Kube, thin: KubeClient) -> None:
    kube.kubectl(
        "run", "thin-pod", "-n", NAMESPACE, "--image=example/app:1", "--restart=Never", "--labels=app=thin"
    )
    pod = ObjectRef("v1", "Pod", "thin-pod", NAMESPACE)
    write([AddFinalizer(pod, "finops.dev/test")], thin)
    assert "finops.dev/test" in kube.get_json("pod", "-n", NAMESPACE, "thin-pod")["metadata"]["finalizers"]
    write([RemoveFinalizer(pod, "finops.dev/test")], thin)
    assert "finops.dev/test" not in (
        kube.get_json("pod", "-n", NAMESPACE, "thin-pod")["metadata"].get("finalizers") or []
    )
    before = requests("create", "pods/eviction")
    thin.evict(NAMESPACE, "thin-pod")
    assert requests("create", "pods/eviction") == before + 1
    eventually(
        lambda: "thin-pod" not in kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name"),
        timeout=60,
        what="evicted pod gone",
    )
    with pytest.raises(ApiException) as gone:
        thin.evict(NAMESPACE, "thin-pod")
    assert gone.value.status == 404


class CountingBucket(TokenBucket):
    """A token bucket that counts the requests it held back."""

    held = 0

    def wait(self) -> float:
        waited = super().wait()
        self.held += waited > 0
        return waited


def test_independent_writes_go_at_once_within_the_client_rate(kube: Kube) -> None:
    """Twelve pods created, given a finalizer, then released and deleted in one plan (each pod's
    finalizer off before its delete), by writer threads sharing a bucket of 2 at 20 requests/s: all
    succeed and all but the burst waited for a token."""
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    limiter = CountingBucket(20, 2)
    paced = KubeClient(api, limiter=limiter)
    names = [f"paced-{i:02d}" for i in range(12)]
    pods = [ObjectRef("v1", "Pod", name, NAMESPACE) for name in names]
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "c", "image": "example/app:1"}]},
        }
        for name in names
    ]
    write([CreateObject(m) for m in manifests], paced)
    assert limiter.held >= 8  # made together: the bucket, not the round trips, spaced them
    write([AddFinalizer(pod, "finops.dev/test") for pod in pods], paced)
    listed = kube.get_json("pods", "-n", NAMESPACE, "-l", "!app")["items"]
    assert (
        sorted(
            p["metadata"]["name"] for p in listed if "finops.dev/test" in p["metadata"].get("finalizers", [])
        )
        == names
    )
    released: list[Intent] = []
    for pod in pods:
        released += [RemoveFinalizer(pod, "finops.dev/test"), DeleteObject(pod)]
    write(released, paced)
    eventually(
        lambda: (
            not any(
                n.startswith("pod/paced-")
                for n in kube.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").split()
            )
        ),
        timeout=60,
        what="released pods gone",
    )
