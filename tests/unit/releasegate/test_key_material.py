"""Where the webhook and the audit find a gate's public key: only in labelled ConfigMaps (as the
handler's index holds them), with a reason when it is not there."""

from __future__ import annotations

import pytest

from finops_operator.handlers.modelreleasegate import key_material
from finops_operator.planners.releasegate import verification_key
from tests.unit.releasegate.helpers import KEY, spec

CONFIGMAP = {"signature": {"publicKey": {"configMap": {"namespace": "keys", "name": "signing"}}}}
OTHER_KEY = {
    "signature": {"publicKey": {"configMap": {"namespace": "keys", "name": "signing", "key": "pub"}}}
}


@pytest.mark.parametrize(
    ("source", "configmaps", "problem"),
    [
        pytest.param(CONFIGMAP, {("keys", "signing"): [{"cosign.pub": KEY.public_pem}]}, "", id="configmap"),
        pytest.param(OTHER_KEY, {("keys", "signing"): [{"pub": KEY.public_pem}]}, "", id="named-key"),
        pytest.param(
            CONFIGMAP,
            {("other", "signing"): [{"cosign.pub": KEY.public_pem}]},
            "ConfigMap not found, or not labelled finops.dev/model-signing-key",
            id="configmap-missing-or-unlabelled",
        ),
        pytest.param(
            OTHER_KEY,
            {("keys", "signing"): [{"cosign.pub": "x"}]},
            "ConfigMap has no key pub",
            id="wrong-key",
        ),
    ],
)
def test_key_material(
    source: dict[str, object], configmaps: dict[tuple[str, str], list[dict[str, str]]], problem: str
) -> None:
    rule = spec(**source).signature
    assert rule is not None
    found = key_material(rule, configmaps)  # type: ignore[arg-type]
    assert found.problem == problem
    key = verification_key(rule, found)
    assert (key.key is not None) is (not problem)
