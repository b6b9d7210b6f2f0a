"""The BigQuery tests' own harness: a missing emulator skips them on a developer's machine and fails them
in CI, so a CI run can never pass by skipping them."""

from __future__ import annotations

import pytest

from tests.bqemulator import ENV_VAR, emulator_executable


def test_a_missing_emulator_fails_in_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run these tests"):
        emulator_executable()


def test_a_missing_emulator_skips_with_the_fix_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-such-bqemulator"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"\.ci/bqemulator-venv\.sh.*not an executable file"):
        emulator_executable()
