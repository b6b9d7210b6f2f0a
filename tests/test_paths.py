"""Confinement to the download root: every escape shape is refused."""

import os

import pytest

from idc_mcp.files import PathRefused, ensure_inside, resolve_inside, safe_component


def test_relative_and_absolute_paths_inside_the_root_are_accepted(tmp_path):
    root = tmp_path / "root"
    assert resolve_inside(root, "lung") == (root / "lung").resolve()
    assert resolve_inside(root, str(root / "a" / "b")) == (root / "a" / "b").resolve()
    assert resolve_inside(root, None) == root.resolve()


def test_rejects_dotdot_traversal(tmp_path):
    with pytest.raises(PathRefused, match=r"\.\."):
        resolve_inside(tmp_path / "root", "../escape")


def test_rejects_absolute_path_elsewhere(tmp_path):
    with pytest.raises(PathRefused, match="outside the download root"):
        resolve_inside(tmp_path / "root", "/etc")


def test_rejects_sibling_prefix_path(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(PathRefused, match="outside"):
        resolve_inside(root, str(tmp_path / "root_evil"))


def test_rejects_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(PathRefused, match="outside"):
        resolve_inside(root, "link/data")


def test_rejects_file_symlink_at_write_time(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "target", root / "file.dcm")
    with pytest.raises(PathRefused, match="symbolic link"):
        ensure_inside(root, root / "file.dcm")


def test_rejects_control_characters(tmp_path):
    with pytest.raises(PathRefused, match="control"):
        resolve_inside(tmp_path / "root", "a\x00b")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("../../etc", "___etc"),
        ("a/b\\c", "a_b_c"),
        ("x\x00y\n", "x_y_"),
        ("..", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_safe_component_strips_separators_dotdot_and_control_characters(value, expected):
    cleaned = safe_component(value)
    assert cleaned == expected
    assert "/" not in cleaned and ".." not in cleaned and "\x00" not in cleaned


def test_safe_component_is_length_capped():
    assert len(safe_component("x" * 1000)) == 120
