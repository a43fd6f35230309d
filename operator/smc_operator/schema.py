"""Pydantic model -> structural OpenAPI v3 schema, as a CRD needs it: ``$ref`` resolved, ``anyOf``
with null turned into nullable, defaults in camelCase, and every list, map and string bounded (the API
server's CEL cost estimate refuses unbounded ones). Generic: nothing here knows the StreamProcessor."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# CEL cost estimation needs bounded lists and strings.
_DEFAULT_MAX_ITEMS = 256
_DEFAULT_MAX_LENGTH = 256


class SchemaError(ValueError):
    """A model uses a type the structural-schema conversion does not support."""


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node and len(node["allOf"]) == 1:
        return {**_resolve(node["allOf"][0], defs), **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _camelize_value(value: Any, schema: dict[str, Any]) -> Any:
    """Rename the keys of a default value as the converted schema names them (data keys untouched)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is None:
            return value
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            camel = snake_to_camel(key)
            out[camel] = _camelize_value(item, props.get(camel, {}))
        return out
    if isinstance(value, list):
        return [_camelize_value(item, schema.get("items", {})) for item in value]
    return value


def to_structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one JSON-schema node (pydantic output) into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaError(f"unions are not supported in a structural schema: {node['anyOf']}")
        merged = {**_resolve(branches[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
        if merged.get("default", 0) is None:
            merged.pop("default")
        return to_structural(merged, defs)

    kind = node.get("type")
    out: dict[str, Any] = {}
    if "description" in node:
        out["description"] = " ".join(node["description"].replace("``", "`").split())
    if kind is None and "enum" not in node and "const" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
        return out
    if "const" in node:
        out["type"] = kind or "string"
        out["enum"] = [node["const"]]
    elif kind == "object":
        out["type"] = "object"
        props = node.get("properties")
        if props:
            out["properties"] = {snake_to_camel(k): to_structural(v, defs) for k, v in props.items()}
            required = [snake_to_camel(r) for r in node.get("required", [])]
            if required:
                out["required"] = required
        else:
            extra = node.get("additionalProperties", True)
            if extra is True or extra == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out["additionalProperties"] = to_structural(extra, defs)
            out["maxProperties"] = node.get("maxProperties", _DEFAULT_MAX_ITEMS)
    elif kind == "array":
        out["type"] = "array"
        out["items"] = to_structural(node.get("items", {}), defs)
        for key in ("minItems",):
            if key in node:
                out[key] = node[key]
        out["maxItems"] = node.get("maxItems", _DEFAULT_MAX_ITEMS)
    elif kind in ("string", "integer", "number", "boolean"):
        out.update(_scalar(kind, node))
    else:
        raise SchemaError(f"unsupported schema type {kind!r}")
    if "default" in node and node["default"] is not None:
        out["default"] = _camelize_value(node["default"], out)
    return out


def _scalar(kind: str, node: dict[str, Any]) -> dict[str, Any]:
    """A scalar node's type and bounds (JSON-schema exclusive bounds in the OpenAPI v3.0 spelling)."""
    out: dict[str, Any] = {"type": kind}
    for key in ("enum", "pattern", "minLength", "maxLength", "minimum", "maximum"):
        if key in node:
            out[key] = node[key]
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        out["maximum"] = node["exclusiveMaximum"]
        out["exclusiveMaximum"] = True
    if kind == "string" and "enum" not in out and "maxLength" not in out:
        out["maxLength"] = _DEFAULT_MAX_LENGTH
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return to_structural(raw, raw.get("$defs", {}))
