"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

The models are the single source of truth; this module only translates pydantic's JSON Schema into
the *structural* OpenAPI v3 subset that apiextensions.k8s.io/v1 accepts: references inlined,
``Optional`` unwrapped, titles and ``additionalProperties: false`` dropped, maps kept as
``additionalProperties``. A test regenerates the files and fails on any drift.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from finops_operator.api import EdgeFleet, FinOpsPolicy, ModelReleaseGate, SovereignRegion
from finops_operator.api.common import CATEGORY, GROUP, VERSION, CustomResource

KINDS: tuple[type[CustomResource], ...] = (FinOpsPolicy, SovereignRegion, EdgeFleet, ModelReleaseGate)

_DROPPED_KEYS = {"title", "$defs"}
Schema = dict[str, Any]


def _resolve(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline ``$ref`` and unwrap ``anyOf [X, null]`` so every node is a plain structural schema."""
    node = dict(schema)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        node = {**target, **node}  # the referring field's description and default win
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions other than Optional[X] cannot be structural: {schema}")
        node = {**_resolve(branches[0], defs), **node}
        if node.get("default", ...) is None:
            del node["default"]
    for key in _DROPPED_KEYS:
        node.pop(key, None)
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(node.get(exclusive), int | float) and not isinstance(node[exclusive], bool):
            node[bound] = node.pop(exclusive)  # JSON Schema 2020 -> OpenAPI 3.0 form
            node[exclusive] = True
    if node.get("additionalProperties") in (False, True):
        del node["additionalProperties"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
    if "properties" in node:
        node["properties"] = {name: _resolve(sub, defs) for name, sub in node["properties"].items()}
        node["type"] = "object"
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _resolve(node["additionalProperties"], defs)
    if "items" in node:
        node["items"] = _resolve(node["items"], defs)
    return _ordered(node)


def _strip_defaults(node: Schema) -> Schema:
    """Status is written by the operator only; defaults there would just add noise."""
    node = {k: v for k, v in node.items() if k != "default"}
    if "properties" in node:
        node["properties"] = {name: _strip_defaults(sub) for name, sub in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _strip_defaults(node["items"])
    return node


_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "additionalProperties",
    "properties",
    "required",
)


def _ordered(node: Schema) -> Schema:
    """Stable key order keeps the generated YAML diff-friendly."""
    ordered = {key: node[key] for key in _KEY_ORDER if key in node}
    ordered.update({key: node[key] for key in sorted(node) if key not in ordered})
    return ordered


def _model_schema(model: type[Any]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def build_crd(kind: type[CustomResource]) -> dict[str, Any]:
    """Return the CustomResourceDefinition of one kind as a plain dict."""
    meta = kind.meta
    fields = kind.model_fields
    spec_schema = _model_schema(fields["spec"].annotation)  # type: ignore[arg-type]
    if meta.spec_validations:
        spec_schema["x-kubernetes-validations"] = [
            *spec_schema.get("x-kubernetes-validations", []),
            *meta.spec_validations,
        ]
    status_type = next(t for t in fields["status"].annotation.__args__ if t is not type(None))  # type: ignore[union-attr]
    status_schema = _strip_defaults(_model_schema(status_type))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{meta.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": meta.kind,
                "listKind": f"{meta.kind}List",
                "plural": meta.plural,
                "singular": meta.singular,
                "shortNames": meta.short_names,
                "categories": [CATEGORY],
            },
            "scope": meta.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": column.name,
                            "type": column.type,
                            "jsonPath": column.json_path,
                            **({"description": column.description} if column.description else {}),
                            **({"priority": column.priority} if column.priority else {}),
                        }
                        for column in meta.printer_columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "description": (kind.__doc__ or meta.kind).strip(),
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_filename(kind: type[CustomResource]) -> str:
    return f"{GROUP}_{kind.meta.plural}.yaml"


def render(kind: type[CustomResource]) -> str:
    header = "# Generated by `finops crds` from finops_operator.api; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / crd_filename(kind)
        path.write_text(render(kind))
        written.append(path)
    return written


def stale_crds(directory: Path) -> list[str]:
    """Names of CRD files in ``directory`` that differ from what the models generate."""
    return [
        crd_filename(kind)
        for kind in KINDS
        if not (directory / crd_filename(kind)).is_file()
        or (directory / crd_filename(kind)).read_text() != render(kind)
    ]
