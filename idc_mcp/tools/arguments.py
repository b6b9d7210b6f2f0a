"""Argument mistakes explained like our other errors: which argument, what was wrong, what the tool takes.

The MCP SDK reports a call whose arguments do not fit the tool's input schema with pydantic's own text
(input values echoed, a link to pydantic's documentation). This turns the same errors into a message for
the assistant: each wrong or missing argument, unknown argument names with the nearest real ones, and
the tool's arguments with their types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from idc_mcp.diagnostics.fuzzy import closest

MAX_SHOWN_INPUT = 60


def _type_of(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "anyOf" in schema:
        kinds = [_type_of(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(kinds) or "null"
    kind = schema.get("type")
    if isinstance(kind, list):  # a compacted anyOf (see compact_schema): one name per type but null
        return " or ".join(_type_of({**schema, "type": k}) for k in kind if k != "null") or "null"
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return {"string": "text", "integer": "integer", "number": "number", "boolean": "true/false"}.get(
        str(kind), str(kind or "any")
    )


def signature(tool: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        parts.append(f"{name} ({_type_of(prop)}{', required' if name in required else ''})")
    return f"{tool} takes: {', '.join(parts) or 'no arguments'}."


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) <= MAX_SHOWN_INPUT:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return text[:MAX_SHOWN_INPUT] + "…" + size


def unknown_arguments(tool: str, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """The message for a call that names an argument the tool does not have, or None.

    Checked before the call runs: the SDK drops unknown names, so `series_uids=[...]` for `series_uid`
    would otherwise run the tool without it and answer about a missing argument the caller did give."""
    if all(name in schema.get("properties", {}) for name in arguments):
        return None
    missing = [
        {"loc": (name,), "type": "missing"} for name in schema.get("required", []) if name not in arguments
    ]
    return explain_arguments(tool, schema, arguments, missing)


def explain_arguments(
    tool: str, schema: Mapping[str, Any], arguments: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]
) -> str:
    """One message for every argument problem of a call, ending with what the tool takes."""
    known = list(schema.get("properties", {}))
    problems: list[str] = []
    for name in arguments:
        if name not in known:
            near = closest(name, known, limit=1) if len(name) <= MAX_SHOWN_INPUT else []
            problems.append(
                f"{tool} has no argument {_shown(name)}" + (f" (did you mean {near[0]!r}?)" if near else "")
            )
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if not loc:
            continue
        where = loc[0] + "".join(f"[{p}]" for p in loc[1:])
        if error.get("type") == "missing":
            problems.append(f"argument {where!r} is required")
        else:
            msg = str(error.get("msg", "is not valid"))
            msg = msg[0].lower() + msg[1:] if msg else msg
            problems.append(f"argument {where!r}: {msg}, got {_shown(error.get('input'))}")
    unique = list(dict.fromkeys(problems))
    # Prefixed like every other tool error the SDK reports ("Error executing tool <name>: ...").
    return f"Error executing tool {tool}: invalid arguments: {'; '.join(unique)}. {signature(tool, schema)}"


# Keywords that only annotate: beside a `$ref`, they can be merged into what it points to.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples"})


def inline_definitions(schema: Any) -> Any:
    """The same JSON schema with each `$ref` to its `$defs` replaced by the definition itself.

    A validator follows a `$ref` on every value it checks (jsonschema's resolver made checking one
    describe_table reply a third slower); written out, the check is the same. A definition that
    refers to itself stays a `$ref` (with `$defs` kept for it)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("$defs"), dict):
        return schema
    defs: dict[str, Any] = schema["$defs"]
    kept = False

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        nonlocal kept
        if isinstance(node, list):
            return [walk(n, seen) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) and ref.startswith("#/$defs/") else None
        if name is None or name not in defs or name in seen:
            kept |= name is not None
            return {k: walk(v, seen) for k, v in node.items()}
        target = walk(defs[name], (*seen, name))
        rest = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
        if not isinstance(target, dict) or set(rest) & set(target) - _ANNOTATIONS:
            return {"allOf": [target, rest]} if rest else target
        return {**target, **rest}

    out = walk({k: v for k, v in schema.items() if k != "$defs"}, ())
    if kept:  # a recursive definition still refers to $defs
        out["$defs"] = defs
    return out


def compact_schema(schema: Any) -> Any:
    """The same JSON schema, shorter: no generated titles, no `default: null` (an absent optional argument
    is null anyway), no `additionalProperties: true` (the default), no `type: string` beside an `enum`
    of strings (the enum admits nothing else), and an `anyOf` of plain types as one
    `type` list (`anyOf [string, array of string, null]` -> `type: [string, array, null], items: ...`;
    `items` applies to arrays only). It validates exactly the same."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if _adds_nothing(key, value):
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):  # keys are names (a property `title` stays)
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        elif key in _DATA:
            out[key] = value
        else:
            out[key] = compact_schema(value)
    if out.get("type") == "string" and all(isinstance(v, str) for v in out.get("enum") or [None]):
        del out["type"]  # an enum of strings admits strings only
    options = out.get("anyOf")
    if isinstance(options, list) and options and all(_plain(o) for o in options):
        merged: dict[str, Any] = {}
        for option in options:
            for key, value in option.items():
                if key != "type" and merged.setdefault(key, value) != value:
                    return out  # two options constrain the same keyword differently: keep anyOf
        types = [o["type"] for o in options]
        if len(set(types)) == len(types):
            del out["anyOf"]
            out = {**merged, **out, "type": types}
    return out


# Keywords whose value maps names to schemas, and keywords whose value is data, not a schema.
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DATA = frozenset({"default", "const", "enum", "examples"})


def _adds_nothing(keyword: str, value: Any) -> bool:
    """A generated title, `default: null`, or `additionalProperties: true` (JSON Schema's default, which
    a validator would still check against every key of every object, e.g. of each row of a query)."""
    return (
        keyword == "title"
        or (keyword == "default" and value is None)
        or (keyword == "additionalProperties" and value is True)
    )


def _plain(option: Any) -> bool:
    """A schema that is one type plus keywords that only apply to that type."""
    return isinstance(option, dict) and isinstance(option.get("type"), str) and "anyOf" not in option
