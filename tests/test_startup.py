"""Start-up: the server is built without garbage collection, and collection is always on afterwards."""

from __future__ import annotations

import gc

import pytest

from idc_mcp import cli


def test_collection_resumes_after_the_build_and_what_was_built_is_frozen() -> None:
    frozen = gc.get_freeze_count()
    try:
        with cli._starting_without_gc():
            assert not gc.isenabled()
            built = [[] for _ in range(1000)]  # lists: objects the collector tracks
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(built)  # later collections do not scan them
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_build_that_fails_leaves_collection_on() -> None:
    try:
        with pytest.raises(RuntimeError), cli._starting_without_gc():
            raise RuntimeError("the server could not be built")
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
