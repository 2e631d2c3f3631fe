"""RBAC as a tested contract: the RBAC objects of deploy/ applied to the real control plane, then
`kubectl auth can-i --as system:serviceaccount:finops-system:finops-operator` over what the operator
must be able to do and what it must never be able to do (read Secrets in bulk, exec into pods, write
kinds it does not manage, escalate). A rule widened in deploy/ fails here until the matrix says why."""

from __future__ import annotations

import pytest
import yaml

from tests.kube import REPO, Kube

SA = "system:serviceaccount:finops-system:finops-operator"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
ALL = ("--all-namespaces",)
TENANT = ("-n", "tenant-a")
OWN = ("-n", "finops-system")

MUST = [
    # Its own kinds: watched everywhere, patched for finalizers/annotations, status reported.
    *[
        (verb, f"{kind}.finops.dev", ALL)
        for kind in ("finopspolicies", "sovereignregions", "edgefleets")
        for verb in ("get", "list", "watch", "patch")
    ],
    *[
        ("patch", f"{kind}.finops.dev/status", ALL)
        for kind in ("finopspolicies", "sovereignregions", "edgefleets")
    ],
    # Workloads it scales, repairs or (EdgeFleet) owns.
    *[(verb, "deployments.apps", TENANT) for verb in ("get", "list", "watch", "patch", "create", "delete")],
    *[(verb, "controllerrevisions.apps", TENANT) for verb in ("list", "create", "delete")],
    *[
        ("patch", kind, TENANT)
        for kind in ("statefulsets.apps", "daemonsets.apps", "jobs.batch", "cronjobs.batch")
    ],
    ("list", "pods", ALL),
    ("patch", "pods", TENANT),
    ("create", "pods/eviction", TENANT),
    *[("list", kind, ALL) for kind in ("nodes", "namespaces", "persistentvolumeclaims", "persistentvolumes")],
    ("get", "secrets", TENANT),  # one named Secret: the alert webhook URL
    ("create", "events", TENANT),
    ("create", "events.events.k8s.io", TENANT),
    *[(verb, "horizontalpodautoscalers.autoscaling", TENANT) for verb in ("create", "patch", "delete")],
    *[
        (verb, "validatingwebhookconfigurations.admissionregistration.k8s.io", ())
        for verb in ("create", "patch")
    ],
    *[
        (verb, "validatingadmissionpolicies.admissionregistration.k8s.io", ())
        for verb in ("create", "patch", "delete")
    ],
    ("list", "customresourcedefinitions.apiextensions.k8s.io", ()),
    *[(verb, "leases.coordination.k8s.io", OWN) for verb in ("get", "create", "update")],
    # The first replica stores the shared webhook certificate in its own namespace.
    ("create", "secrets", OWN),
]

MUST_NOT = [
    # Secrets: never in bulk, never written.
    ("list", "secrets", ALL),
    ("watch", "secrets", ALL),
    ("list", "secrets", TENANT),
    *[(verb, "secrets", TENANT) for verb in ("create", "update", "patch", "delete")],
    # The shared certificate's Secret is made once and never rewritten or removed by the operator.
    *[(verb, "secrets", OWN) for verb in ("update", "patch", "delete", "list")],
    # No way into a pod or around the scheduler.
    *[("create", sub, TENANT) for sub in ("pods/exec", "pods/attach", "pods/portforward")],
    ("get", "pods/exec", TENANT),
    ("get", "pods/log", TENANT),
    ("get", "nodes/proxy", ()),
    ("create", "pods", TENANT),
    ("delete", "pods", TENANT),
    ("create", "serviceaccounts/token", TENANT),
    # No writes to kinds it does not manage.
    *[(verb, "configmaps", TENANT) for verb in ("create", "patch", "delete")],
    *[(verb, "services", TENANT) for verb in ("create", "patch")],
    *[
        (verb, kind, TENANT)
        for kind in ("statefulsets.apps", "daemonsets.apps", "jobs.batch")
        for verb in ("create", "delete")
    ],
    ("update", "deployments.apps", TENANT),  # server-side apply and merge patches only
    ("patch", "deployments.apps/scale", TENANT),
    *[(verb, "nodes", ()) for verb in ("patch", "delete")],
    *[(verb, "namespaces", ()) for verb in ("create", "patch", "delete")],
    *[
        (verb, f"{kind}.finops.dev", ALL)
        for kind in ("finopspolicies", "sovereignregions", "edgefleets")
        for verb in ("create", "delete", "update")
    ],
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io", ()) for verb in ("create", "patch", "delete")],
    ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io", ()),
    ("create", "leases.coordination.k8s.io", ("-n", "kube-system")),
    ("update", "leases.coordination.k8s.io", ("-n", "kube-system")),
    # No escalation paths.
    *[
        (verb, kind, ())
        for kind in (
            "clusterrolebindings.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io",
        )
        for verb in ("create", "patch")
    ],
    *[
        (verb, kind, TENANT)
        for kind in ("rolebindings.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io")
        for verb in ("create", "patch")
    ],
    ("bind", "clusterroles.rbac.authorization.k8s.io", ()),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", ()),
    ("escalate", "roles.rbac.authorization.k8s.io", TENANT),
    *[
        ("impersonate", kind, ())
        for kind in ("users", "groups", "serviceaccounts", "userextras.authentication.k8s.io")
    ],
    ("create", "certificatesigningrequests.certificates.k8s.io", ()),
    ("approve", "signers.certificates.k8s.io", ()),
    ("create", "tokenreviews.authentication.k8s.io", ()),
    ("*", "*", ALL),
]


@pytest.fixture(scope="module")
def operator_rbac(kube: Kube) -> None:
    """The RBAC objects exactly as the kustomize base renders them (however deploy/ is laid out)."""
    rendered = yaml.safe_load_all(kube.kubectl("kustomize", str(REPO / "deploy")))
    objects = [o for o in rendered if o and o.get("kind") in RBAC_KINDS]
    assert {o["kind"] for o in objects} >= {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"}
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def _can(kube: Kube, verb: str, resource: str, scope: tuple[str, ...]) -> bool:
    # `can-i VERB pods/exec` would ask about a pod *named* exec: subresources go in their own flag.
    kind, _, sub = resource.partition("/")
    subresource = ("--subresource", sub) if sub else ()
    answer = kube.kubectl("auth", "can-i", verb, kind, *subresource, *scope, "--as", SA, check=False).strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource}: {answer!r}"
    return answer == "yes"


def _label(case: tuple[str, str, tuple[str, ...]]) -> str:
    verb, resource, scope = case
    where = "cluster" if not scope else "all-ns" if scope == ALL else scope[1]
    return f"{verb}-{resource}-{where}"


@pytest.mark.usefixtures("operator_rbac")
def test_the_operator_can_do_what_it_needs(kube: Kube) -> None:
    missing = [_label(case) for case in MUST if not _can(kube, *case)]
    assert not missing, f"the operator's RBAC lacks: {missing}"


@pytest.mark.usefixtures("operator_rbac")
def test_the_operator_can_do_nothing_it_must_not(kube: Kube) -> None:
    excess = [_label(case) for case in MUST_NOT if _can(kube, *case)]
    assert not excess, f"the operator's RBAC allows: {excess}"
