"""The ApplicationSet example (deploy/argocd/applicationset.yaml) rendered by Argo CD's own
applicationset-controller from cluster Secrets with region labels; the API server validates every
generated Application against Argo CD's CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_harness import APPLICATIONSET, NAMESPACE, running_applicationset_controller
from tests.kube import Kube, eventually

# The first run builds Argo CD from source (about 13 min on 2 cores), then it is cached.
pytestmark = [pytest.mark.timeout(1800)]


def cluster(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"cluster-{name}",
            "namespace": NAMESPACE,
            "labels": {"argocd.argoproj.io/secret-type": "cluster", **labels},
        },
        "stringData": {"name": name, "server": f"https://{name}.example.com", "config": "{}"},
    }


def test_one_application_per_managed_cluster_with_the_policies_of_its_region(
    kube: Kube, tmp_path: Path
) -> None:
    clusters = [
        cluster("gpu-eu-1", {"finops.dev/managed": "true", "finops.dev/region": "eu-west-1"}),
        cluster("gpu-us-1", {"finops.dev/managed": "true", "finops.dev/region": "us-east-1"}),
        cluster("gpu-lab", {"finops.dev/managed": "true"}),  # no region: nothing to enforce there
        cluster("ci", {"finops.dev/region": "eu-west-1"}),  # not managed
    ]
    with running_applicationset_controller(kube, tmp_path):
        kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(clusters))
        kube.kubectl("apply", "-f", str(APPLICATIONSET))
        try:
            apps = eventually(
                lambda: (
                    len(
                        items := kube.get_json(
                            "applications.argoproj.io", "-n", NAMESPACE, "-l", "finops.dev/region"
                        )["items"]
                    )
                    == 2
                    and items
                ),
                timeout=60,
                what="two generated Applications",
            )
        finally:
            kube.kubectl("delete", "-f", str(APPLICATIONSET), "--wait=true", "--timeout=60s")
            kube.kubectl("delete", "secret", "-n", NAMESPACE, *(c["metadata"]["name"] for c in clusters))
    generated = {
        a["metadata"]["name"]: (
            a["spec"]["destination"]["server"],
            a["spec"]["source"]["path"],
            a["metadata"]["labels"]["finops.dev/region"],
        )
        for a in apps
    }
    assert generated == {
        "finops-gpu-eu-1": ("https://gpu-eu-1.example.com", "regions/eu-west-1", "eu-west-1"),
        "finops-gpu-us-1": ("https://gpu-us-1.example.com", "regions/us-east-1", "us-east-1"),
    }
    for app in apps:
        assert app["spec"]["ignoreDifferences"] == [
            {
                "group": "apps",
                "kind": "Deployment",
                "managedFieldsManagers": ["finops-operator", "kube-controller-manager"],
            }
        ]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
