"""REST paths of the thin client's generic verbs."""

from __future__ import annotations

import pytest

from finops_operator.kube import resource_path


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param(("v1", "Pod", "ns", "p"), ("/api/v1/namespaces/ns/pods/p", "pods"), id="core"),
        pytest.param(
            ("apps/v1", "Deployment", "ns", "d"),
            ("/apis/apps/v1/namespaces/ns/deployments/d", "deployments"),
            id="apps",
        ),
        pytest.param(
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "", "v"),
            (
                "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/v",
                "validatingadmissionpolicies",
            ),
            id="cluster-scoped",
        ),
        pytest.param(
            ("batch/v1", "CronJob", "ns", None),
            ("/apis/batch/v1/namespaces/ns/cronjobs", "cronjobs"),
            id="collection",
        ),
    ],
)
def test_resource_path(ref: tuple[str, str, str, str | None], expected: tuple[str, str]) -> None:
    assert resource_path(*ref) == expected
