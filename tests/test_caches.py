"""Caches: one kind (`catalog.memo.Memo`), keyed by values that cannot change, never by id().

The trap they replace: a cache keyed by `id(catalog)` hands a new catalog the entries of a freed one
that had the same id; a key holding a list goes stale when the list is changed after the fact.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mcp import Client

from idc_mcp.catalog.database import Catalog
from idc_mcp.catalog.memo import Memo
from idc_mcp.config import load_settings
from idc_mcp.tools.selection import Selection, resolve_selection
from tests.servers import server_from_environment


def test_a_selection_is_immutable_and_hashable_so_it_can_key_a_cache() -> None:
    given = ["qin_breast", "4d_lung"]
    selection = Selection(collection_ids=given, series_uids=["1.2.3"])
    given.append("nlst")  # the caller's list changing later does not change the selection
    assert selection.collection_ids == ("qin_breast", "4d_lung")
    assert hash(selection) == hash(
        Selection(collection_ids=("qin_breast", "4d_lung"), series_uids=("1.2.3",))
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        selection.sql = "SELECT 1"  # type: ignore[misc]


def test_a_selection_built_from_lists_resolves_like_before(catalog: Catalog) -> None:
    from_lists = resolve_selection(catalog, Selection(collection_ids=["qin_breast"]))
    from_tuples = resolve_selection(catalog, Selection(collection_ids=("qin_breast",)))
    assert from_lists.series_uids == from_tuples.series_uids and from_lists.count > 0


@pytest.mark.anyio
async def test_the_selection_arguments_are_still_lists_of_strings_for_callers() -> None:
    async with Client(server_from_environment()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    prop = tools["check_licenses"].input_schema["properties"]["collection_ids"]
    variants = prop.get("anyOf", [prop])
    # An array of strings, in pydantic's anyOf form or in the compact `type: [array, null]` we publish.
    assert any(
        "array" in ([v["type"]] if isinstance(v.get("type"), str) else v.get("type", []))
        and v.get("items") == {"type": "string"}
        for v in variants
    )


def test_a_memo_refuses_a_key_that_can_change() -> None:
    memo: Memo[int] = Memo(maxsize=4)
    with pytest.raises(TypeError):
        memo.put(("index", ["Modality"]), 1)


def test_a_memo_drops_the_least_recently_used_by_size_and_keeps_nothing_too_large() -> None:
    memo: Memo[list[int]] = Memo(maxsize=10, getsizeof=len)
    memo.put("a", [0] * 4)
    memo.put("b", [0] * 4)
    assert memo.get("a") is not None  # "a" is now the most recently used
    memo.put("c", [0] * 4)  # 12 > 10: "b" goes
    assert memo.get("b") is None and memo.get("a") is not None and memo.get("c") is not None
    memo.put("huge", [0] * 11)
    assert memo.get("huge") is None and len(memo) == 2


def test_catalogs_are_keyed_by_what_they_hold_not_by_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = Catalog(load_settings()), Catalog(load_settings())
    assert first.cache_key == second.cache_key  # the same files: the same cached facts apply
    monkeypatch.setenv("IDC_MCP_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Catalog(load_settings()).cache_key != first.cache_key  # other files: nothing shared
