"""Replies that cost the assistant little and never mislead it: the tool surface stays small, every call a
reply names is valid as written, argument mistakes read like our own errors, cut text ends on a word."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from mcp import Client

from idc_mcp.catalog.schemas import all_tables
from idc_mcp.config import load_settings
from idc_mcp.indices import fetch
from idc_mcp.tools.arguments import omittable_without_null
from tests.servers import server_from_environment

# IDC's official MCP server sends 11,248 B of tool descriptions and input schemas for 18 tools: 625 B a
# tool. New tools must fit that average, not squeeze under a total (issue 22, item 15).
PEER_BYTES_PER_TOOL = 625
MAX_TOOL_BYTES = 1_536


def model_visible(tool: Any) -> bool:
    """A tool the model reads in the tool list: not one only an app calls (`_meta.ui.visibility`)."""
    visibility = ((tool.meta or {}).get("ui") or {}).get("visibility")
    return visibility is None or "model" in visibility


def tool_bytes(tool: Any) -> int:
    return len((tool.description or "").encode()) + len(json.dumps(tool.input_schema).encode())


@pytest.mark.anyio
async def test_each_tool_the_model_reads_costs_no_more_than_the_official_servers_average():
    server = server_from_environment()
    async with Client(server) as client:
        tools = [t for t in (await client.list_tools()).tools if model_visible(t)]
    sizes = {t.name: tool_bytes(t) for t in tools}
    average = sum(sizes.values()) / len(sizes)
    print(
        f"tool descriptions + input schemas: {sum(sizes.values()):,} B for {len(sizes)} tools, "
        f"{average:.0f} B a tool (peer: {PEER_BYTES_PER_TOOL}); largest: {max(sizes, key=sizes.__getitem__)}"
    )
    print(f"server instructions: {len(server.instructions or ''):,} bytes")
    assert average <= PEER_BYTES_PER_TOOL, sizes
    assert not {name: n for name, n in sizes.items() if n > MAX_TOOL_BYTES}
    for tool in tools:  # still every description says when to call the tool
        assert "Call" in (tool.description or ""), tool.name


def test_the_budget_counts_what_the_model_reads_and_leaves_app_only_tools_out():
    from mcp.types import Tool

    def tool(meta: dict[str, Any] | None) -> Tool:
        return Tool(name="t", description="Call it.\n", input_schema={"type": "object"}, _meta=meta)

    assert tool_bytes(tool(None)) == len("Call it.\n") + len(json.dumps({"type": "object"}))
    assert model_visible(tool(None)) and model_visible(tool({"ui": {"visibility": ["model", "app"]}}))
    assert not model_visible(tool({"ui": {"visibility": ["app"]}}))


@pytest.mark.anyio
async def test_shared_selection_arguments_are_described_once_in_the_instructions():
    # Seven tools take the selection arguments: described in each, they cost every conversation ~1 KB.
    from idc_mcp.tools.selection import SELECTION_ARGUMENT_NAMES, SELECTION_ARGUMENTS

    async with Client(server_from_environment()) as client:
        tools = [
            t for t in (await client.list_tools()).tools if "series_uids" in t.input_schema["properties"]
        ]
    assert len(tools) >= 5
    for tool in tools:
        shared = {k: v for k, v in tool.input_schema["properties"].items() if k in SELECTION_ARGUMENT_NAMES}
        assert not [v for v in shared.values() if "description" in v or "default" in v], tool.name
    assert SELECTION_ARGUMENTS in (server_from_environment().instructions or "")
    for name in SELECTION_ARGUMENT_NAMES:
        assert name in SELECTION_ARGUMENTS


def test_descriptions_go_out_without_the_docstrings_indentation():
    import anyio

    async def listed() -> list[Any]:
        async with Client(server_from_environment()) as client:
            return (await client.list_tools()).tools

    for tool in anyio.run(listed):
        assert "\n    " not in (tool.description or ""), tool.name


@pytest.mark.anyio
async def test_compact_input_schemas_still_accept_null_and_refuse_wrong_types():
    async with Client(server_from_environment()) as client:
        (tool,) = [t for t in (await client.list_tools()).tools if t.name == "check_licenses"]
        # An optional argument is left out rather than set to null: `null` is not listed (~10 B each)...
        assert tool.input_schema["properties"]["collection_ids"]["type"] == "array"
        assert "null" not in json.dumps(tool.input_schema) and "title" not in json.dumps(tool.input_schema)
        # ... yet an explicit null is still accepted, and a wrong type still refused.
        ok = await client.call_tool("check_licenses", {"collection_ids": ["lidc_idri"], "patient_ids": None})
        assert not ok.is_error
        wrong = await client.call_tool("check_licenses", {"collection_ids": 5})
        assert wrong.is_error


def test_only_optional_arguments_lose_null_and_output_schemas_keep_it():
    schema = {
        "type": "object",
        "properties": {
            "needed": {"type": ["string", "null"]},
            "optional": {"type": ["array", "null"], "items": {"type": "string"}},
            "either": {"type": ["string", "array", "null"]},
            "defaulted": {"type": ["integer", "null"], "default": 5},
        },
        "required": ["needed"],
    }
    out = omittable_without_null(schema)["properties"]
    assert out["needed"]["type"] == ["string", "null"]  # required: null must stay sayable
    assert out["optional"] == {"type": "array", "items": {"type": "string"}}
    assert out["either"]["type"] == ["string", "array"]
    assert out["defaulted"]["type"] == ["integer", "null"]  # null would not mean the default


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "describe_table",
            {"name": "index"},
            ["describe_table has no argument 'name'", "'table' is required"],
        ),
        ("query", {"sql": "SELECT 1", "max_rows": "ten"}, ["argument 'max_rows'", "got 'ten'"]),
        ("query", {"sql": "SELECT 1", "max_rows": 5000}, ["less than or equal to 1000", "got 5000"]),
        ("check_licenses", {"collection_ids": "nlst"}, ["argument 'collection_ids'", "valid list"]),
        ("get_citations", {"collection_ids": ["nlst"], "format": "ris"}, ["argument 'format'"]),
    ],
)
async def test_argument_mistakes_read_like_our_own_errors(tool, arguments, expected):
    async with Client(server_from_environment()) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    for part in expected:
        assert part in text, text
    assert "pydantic" not in text and "http" not in text and "input_value" not in text
    assert f"{tool} takes: " in text  # the arguments it does take, with their types


@pytest.mark.anyio
async def test_a_misspelled_argument_is_refused_not_dropped():
    # The SDK drops unknown names: series_uids=[...] for series_uid would run the tool without the UIDs
    # the caller gave and answer that no series was given.
    async with Client(server_from_environment()) as client:
        result = await client.call_tool("get_viewer_url", {"series_uids": ["1.2.3"]})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "get_viewer_url has no argument 'series_uids' (did you mean 'series_uid'?)" in text
    # The arguments it takes, with readable types (not the schema's raw type lists).
    assert "series_uid (text or list of text)" in text and "['" not in text


# Replies of every kind that name a call to make next.
SCENARIOS: list[tuple[str, dict[str, Any]]] = [
    ("query", {"sql": "SELECT * FROM indx"}),
    ("query", {"sql": "SELECT cancer_types FROM index"}),
    ("query", {"sql": "SELECT SeriesInstanceUID FROM index WHERE instanceCount < 0"}),
    ("query", {"sql": "SELECT * FROM seg_index"}),
    ("query", {"sql": "SELECT count(*) FROM index WHERE Manufacturer = 'GE'"}),
    (
        "query",
        {
            "sql": "SELECT collection_id FROM collections_index "
            "WHERE list_contains(list_transform(sources, x -> x.license.license_short_name), 'CC BY 4')"
        },
    ),
    ("list_tables", {}),
    ("describe_table", {"table": "index"}),
    ("describe_table", {"table": "collections"}),
    ("describe_table", {"table": "index", "column": "manufactrer"}),
    ("list_collections", {"cancer_type": "kidney", "modality": "CT"}),
    ("list_collections", {"cancer_type": "kidny"}),
    ("check_licenses", {"collection_ids": ["duke_breast_cancer_mri"]}),
    ("estimate_size", {"collection_ids": ["lidc_idri"]}),
]
# Tools whose named calls are run as written; the others only have their arguments checked.
RUN_AS_WRITTEN = {
    "list_tables",
    "describe_table",
    "list_collections",
    "query",
    "check_licenses",
    "estimate_size",
}


def strings(value: Any) -> list[str]:
    """Every text inside a structured reply."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def named_calls(text: str, tools: list[str]) -> list[tuple[str, str]]:
    """(tool, argument text) of every `tool(...)` in the text, brackets and quotes respected."""
    found = []
    for match in re.finditer(r"\b(" + "|".join(tools) + r")\(", text):
        depth, quote, i = 1, "", match.end()
        while i < len(text) and depth:
            ch = text[i]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            i += 1
        found.append((match.group(1), text[match.end() : i - 1]))
    return found


def as_arguments(tool: str, args: str, properties: list[str]) -> dict[str, Any]:
    """The arguments as MCP would receive them; fails on a placeholder such as `describe_table(name)`."""
    call = ast.parse(f"f({args})", mode="eval").body
    assert isinstance(call, ast.Call)
    try:
        values = {properties[i]: ast.literal_eval(a) for i, a in enumerate(call.args)}
        values |= {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError as exc:
        raise AssertionError(f"{tool}({args}) is not valid as written (a placeholder?)") from exc
    unknown = set(values) - set(properties)
    assert not unknown, f"{tool}({args}) names unknown arguments {unknown}"
    return values


@pytest.mark.anyio
async def test_every_call_named_in_a_reply_is_valid_as_written():
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        texts = []
        for tool, arguments in SCENARIOS:
            result = await client.call_tool(tool, arguments)
            texts += [result.content[0].text] if result.is_error else strings(result.structured_content)  # type: ignore[union-attr]
        calls = {call for text in texts for call in named_calls(text, list(tools))}
        assert len({tool for tool, _ in calls}) >= 4, calls  # the scenarios do name calls of several tools
        for tool, args in sorted(calls):
            arguments = as_arguments(tool, args, list(tools[tool].input_schema["properties"]))
            if tool == "fetch_index":
                assert arguments["name"] in fetch.fetchable() or arguments["name"] in all_tables()
            elif tool in RUN_AS_WRITTEN:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, f"{tool}({args}): {result.content[0].text}"  # type: ignore[union-attr]


def test_the_call_checker_catches_a_placeholder_and_a_wrong_argument_name():
    with pytest.raises(AssertionError, match="not valid as written"):
        as_arguments("describe_table", "name", ["table", "column"])
    with pytest.raises(AssertionError, match="unknown arguments"):
        as_arguments("describe_table", 'name="index"', ["table", "column"])


@pytest.mark.parametrize("table", [n for n, t in all_tables().items() if not t.bundled])
def test_a_not_installed_index_description_is_cut_at_a_word_boundary(table):
    message = fetch.not_installed_message(load_settings(), table)
    description = all_tables()[table].description
    inside = re.search(rf"Table '{table}' is an IDC index that is not installed \((.*)\)\.", message)
    if not description:
        return
    assert inside, message
    kept = inside.group(1).removesuffix(" …")
    assert " ".join(description.split()).startswith(kept)
    rest = " ".join(description.split())[len(kept) :]
    assert rest == "" or rest.startswith(" "), f"cut mid-word: ...{kept[-20:]}|{rest[:20]}"


@pytest.mark.anyio
async def test_compact_output_schemas_check_replies_as_strictly_and_cost_clients_less():
    # Every client compiles each tool's output schema and checks every reply against it: pydantic's
    # titles and `anyOf [x, null]` made describe_table's reply cost a client several ms to check.
    from jsonschema.validators import validator_for

    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in ("query", "describe_table", "check_licenses"):
            assert "title" not in json.dumps(tools[name].output_schema), name
            assert "$ref" not in json.dumps(tools[name].output_schema), name  # written out: no lookups
        # The client checks these replies against the compact schemas: they pass.
        described = await client.call_tool("describe_table", {"table": "collections_index"})
        licensed = await client.call_tool("check_licenses", {"collection_ids": ["lidc_idri"]})
        assert not described.is_error and not licensed.is_error
    schema = tools["describe_table"].output_schema
    reply = dict(described.structured_content or {})
    check = validator_for(schema)(schema)
    assert not list(check.iter_errors(reply))
    for broken in (
        {**reply, "row_count": "many"},
        {**reply, "summary": {"Modality": 7}},
        {k: v for k, v in reply.items() if k != "name"},
    ):
        assert list(check.iter_errors(broken)), broken


def test_inlined_definitions_validate_the_same_and_keep_recursion():
    from jsonschema.validators import validator_for

    from idc_mcp.tools.arguments import inline_definitions

    schema = {
        "$defs": {
            "Count": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            "Tree": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
            },
        },
        "type": "object",
        "properties": {
            "count": {"$ref": "#/$defs/Count", "description": "annotations merge into the definition"},
            "strict": {"$ref": "#/$defs/Count", "type": "object", "maxProperties": 1},
            "tree": {"$ref": "#/$defs/Tree"},
        },
    }
    inlined = inline_definitions(schema)
    assert inlined["properties"]["count"]["required"] == ["n"]
    assert "allOf" in inlined["properties"]["strict"]  # a second `type` is checked, not overwritten
    assert inlined["$defs"] and "#/$defs/Tree" in json.dumps(inlined["properties"]["tree"])
    for instance, valid in (
        ({"count": {"n": 1}, "tree": {"kids": [{"kids": []}]}}, True),
        ({"count": {"n": "1"}}, False),
        ({"count": {}}, False),
        ({"strict": {"n": 1, "m": 2}}, False),
        ({"tree": {"kids": [{"kids": "no"}]}}, False),
    ):
        for candidate in (schema, inlined):
            check = validator_for(candidate)(candidate)
            assert check.is_valid(instance) is valid, (instance, candidate is inlined)


def test_compacting_a_schema_drops_its_titles_but_keeps_a_property_named_title():
    # Regression: every key named "title" was dropped, so a citation's `title` field vanished from its
    # schema (and stayed in `required`, a schema no reply could pass).
    from pydantic import BaseModel

    from idc_mcp.tools.arguments import compact_schema, inline_definitions

    class Parsed(BaseModel):
        title: str | None
        year: str = "n.d."

    class Reply(BaseModel):
        citations: list[Parsed]

    schema = compact_schema(inline_definitions(Reply.model_json_schema()))
    item = schema["properties"]["citations"]["items"]
    assert set(item["properties"]) == {"title", "year"} and item["required"] == ["title"]
    assert item["properties"]["title"] == {"type": ["string", "null"]}
    assert "title" not in schema and "title" not in item and "title" not in item["properties"]["year"]


@pytest.mark.anyio
async def test_a_query_reply_text_is_its_structured_content_without_indentation():
    # The SDK indented the text copy of the reply: 18-34% of it was indentation, which the assistant
    # reads as tokens and the wire carries (issue 26).
    sql = "SELECT collection_id, Modality, count(*) AS n FROM index GROUP BY ALL ORDER BY n DESC LIMIT 50"
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("query", {"sql": sql})
    assert not result.is_error and result.structured_content is not None
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content  # the same reply, for clients that read text
    assert "\n" not in text and '": ' not in text  # compact
    assert len(result.structured_content["rows"]) == 50
    schema = tools["query"].output_schema  # still declared: clients check the reply against it
    assert schema is not None and {"columns", "rows", "diagnostics"} <= set(schema["properties"])
