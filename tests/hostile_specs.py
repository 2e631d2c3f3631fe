"""Hypothesis strategies for hostile FinOpsPolicy, SovereignRegion and EdgeFleet specs: shaped like
the schema (so most examples reach deep into the planners) but with every leaf sometimes wrong: the
wrong type, out of range, empty, huge, odd unicode, keys the schema does not know. Shared by the
planner property tests (tests/unit/test_hostile_planners.py) and the API-server one
(tests/integration/test_hostile_input.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

LABEL_CHARS = st.sampled_from("abz09-_./AZ") | st.characters(codec="utf-8", exclude_categories=("Cs",))
LABEL_TEXT = st.text(LABEL_CHARS, min_size=0, max_size=70)
NICE_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?", fullmatch=True)


def sometimes_wrong(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``value``, sometimes any JSON at all."""
    return st.one_of(value, value, value, JSON)


def optional_fields(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with the required keys, a subset of the optional ones, and sometimes a stray key."""
    return st.fixed_dictionaries(
        {k: sometimes_wrong(v) for k, v in required.items()},
        optional={**{k: sometimes_wrong(v) for k, v in optional.items()}, "zzUnknownField": JSON},
    )


NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=-1, max_value=1e9, allow_nan=False, allow_infinity=False),
)
REQUIREMENT = optional_fields(
    {
        "key": st.one_of(NICE_LABEL, LABEL_TEXT),
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", ""]),
    },
    {"values": st.lists(st.one_of(NICE_LABEL, LABEL_TEXT), max_size=6)},
)
SELECTOR = optional_fields(
    {},
    {
        "matchLabels": st.dictionaries(
            st.one_of(NICE_LABEL, LABEL_TEXT), st.one_of(NICE_LABEL, LABEL_TEXT), max_size=5
        ),
        "matchExpressions": st.lists(REQUIREMENT, max_size=4),
    },
)
ROUTE = optional_fields(
    {"recipientGroup": st.text(max_size=30)},
    {"severity": st.sampled_from(["INFO", "WARNING", "CRITICAL", "info", "PAGE"])},
)

POLICY_SPEC = optional_fields(
    {"targetWorkloadSelector": SELECTOR},
    {
        "enforcementMode": st.sampled_from(["Enforce", "DryRun", "Warn", "enforce", ""]),
        "costLimits": optional_fields(
            {},
            {
                "dailyGPUHours": NUMBERS,
                "dailyCost": NUMBERS,
                "maxCPUCores": NUMBERS,
                "maxMemoryGB": NUMBERS,
                "maxGPUsPerPod": st.integers(min_value=-2, max_value=100),
                "budgetAction": st.sampled_from(
                    ["ScaleToMin", "ScaleToZero", "BlockScaleUp", "AlertOnly", "Nuke"]
                ),
                "alertThresholdsPercent": st.lists(st.integers(min_value=-1, max_value=150), max_size=12),
            },
        ),
        "budgetWindow": optional_fields(
            {},
            {
                "timeZone": st.sampled_from(
                    ["UTC", "Europe/Paris", "America/St_Johns", "Mars/Olympus", "", "../etc"]
                ),
                "resetTime": st.sampled_from(["00:00", "23:59", "24:00", "7:5", "12:30"]),
            },
        ),
        "pricing": optional_fields(
            {"gpuHourlyRate": NUMBERS},
            {
                "gpuProductRates": st.dictionaries(st.text(max_size=20), NUMBERS, max_size=4),
                "currency": st.sampled_from(["USD", "EUR", "X", "EURO"]),
            },
        ),
        "optimizationRules": optional_fields(
            {},
            {
                "idleShutdownThresholdMinutes": st.integers(min_value=-1, max_value=20000),
                "idleGPUUtilizationPercent": NUMBERS,
                "modelQuantizationRequired": st.booleans(),
            },
        ),
        "autoScale": optional_fields(
            {"maxReplicas": st.integers(min_value=-1, max_value=20000)},
            {
                "minReplicas": st.integers(min_value=-1, max_value=20000),
                "cpuUtilizationPercentage": st.integers(min_value=-1, max_value=200),
            },
        ),
        "predictiveScaling": optional_fields(
            {"enabled": st.booleans()},
            {
                "demandQuery": st.text(max_size=40),
                "targetPerReplica": NUMBERS,
                "horizonMinutes": st.integers(min_value=0, max_value=20000),
                "leadTimeMinutes": st.integers(min_value=-1, max_value=2000),
                "model": st.sampled_from(["auto", "holtWinters", "sarimax", "seasonalNaive", "lstm"]),
                "quantile": st.floats(min_value=0, max_value=1),
                "minimumHistoryHours": st.integers(min_value=0, max_value=3000),
            },
        ),
        "alerting": optional_fields(
            {},
            {
                "thresholdExceeded": ROUTE,
                "budgetExhausted": ROUTE,
                "idleShutdown": ROUTE,
                "capViolation": ROUTE,
                "webhookSecretRef": optional_fields(
                    {"name": st.text(max_size=20)}, {"key": st.text(max_size=20)}
                ),
            },
        ),
    },
)

REGION_SPEC = optional_fields(
    {
        "region": st.one_of(NICE_LABEL, LABEL_TEXT),
        "namespaceSelector": SELECTOR,
    },
    {
        "nodeSelector": SELECTOR,
        "allowedGPUProducts": st.lists(st.one_of(NICE_LABEL, LABEL_TEXT), max_size=5),
        "allowedDataClassifications": st.lists(st.one_of(NICE_LABEL, LABEL_TEXT), max_size=5),
        "dataClassificationLabel": st.one_of(NICE_LABEL, LABEL_TEXT),
        "enforcementMode": st.sampled_from(["Enforce", "DryRun", "Warn", "Audit"]),
        "evictOutOfRegionPods": st.booleans(),
    },
)

CONTAINER = optional_fields(
    {"name": NICE_LABEL, "image": st.one_of(NICE_LABEL, st.text(max_size=30))},
    {
        "resources": st.fixed_dictionaries(
            {}, optional={"limits": st.dictionaries(st.text(max_size=16), JSON_LEAF, max_size=3)}
        )
    },
)
TEMPLATE = optional_fields(
    {
        "spec": optional_fields(
            {"containers": st.lists(CONTAINER, max_size=3)}, {"nodeSelector": JSON, "affinity": JSON}
        )
    },
    {"metadata": optional_fields({}, {"labels": st.dictionaries(NICE_LABEL, NICE_LABEL, max_size=3)})},
)
FLEET_SPEC = optional_fields(
    {
        "nodeSelector": SELECTOR,
        "modelVersion": st.one_of(NICE_LABEL, st.text(max_size=140)),
        "template": TEMPLATE,
    },
    {
        "siteLabel": st.one_of(st.just("finops.dev/site"), LABEL_TEXT),
        "replicasPerSite": st.integers(min_value=-1, max_value=1100),
        "hardwareProfiles": st.lists(
            optional_fields(
                {
                    "name": st.text(max_size=70),
                    "nodeLabels": st.dictionaries(NICE_LABEL, NICE_LABEL, max_size=3),
                },
                {"image": st.text(max_size=30), "resources": JSON},
            ),
            max_size=3,
        ),
        "rollout": optional_fields(
            {},
            {
                "wavePercents": st.lists(st.integers(min_value=-1, max_value=120), max_size=6),
                "soakSeconds": st.integers(min_value=-1, max_value=90000),
                "waveTimeoutSeconds": st.integers(min_value=0, max_value=700000),
                "maxFailedSitesPercent": st.integers(min_value=-1, max_value=101),
                "healthQuery": st.text(max_size=40),
                "paused": st.booleans(),
            },
        ),
        "offlineTolerance": optional_fields(
            {}, {"maxOfflineSitesPercent": st.integers(min_value=-1, max_value=101)}
        ),
        "revisionHistoryLimit": st.integers(min_value=-1, max_value=101),
        "finOpsPolicyRef": optional_fields({"name": st.text(max_size=20)}, {}),
    },
)
