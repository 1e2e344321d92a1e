"""OpenSTA exits 0 after a failing command: its ``Error:`` lines are what says it failed."""

from __future__ import annotations

import pytest

from conftest import need_tools
from core.errors import ToolError
from core.run import RunDir
from ppa import sta


def _fake_sta(tmp_path, monkeypatch, body: str):
    exe = tmp_path / "fake_sta"
    exe.write_text("#!/bin/sh\n"
                   'if [ "$1" = "-version" ]; then echo 2.0.17; exit 0; fi\n' + body, encoding="utf-8")
    exe.chmod(0o755)
    monkeypatch.setenv("STA", str(exe))


def test_an_error_line_is_a_tool_error_naming_it(tmp_path, monkeypatch):
    _fake_sta(tmp_path, monkeypatch, 'echo "Warning: something minor"\n'
                                     'echo "Error: cannot read file /no/such.lib."\necho AXF_DELAY 0 0\nexit 0\n')
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(ToolError, match=r"^OpenSTA failed: Error: cannot read file /no/such\.lib\. \(log: .*sta\.log\)$"):
        sta.run(run, "read_liberty /no/such.lib\n", step="sta")


def test_a_clean_log_is_returned(tmp_path, monkeypatch):
    _fake_sta(tmp_path, monkeypatch, 'echo "Warning: something minor"\necho AXF_DELAY 1e-9 0\nexit 0\n')
    run = RunDir.create(tmp_path / "run")
    assert "AXF_DELAY" in sta.run(run, "puts hi\n", step="sta").read_text()


def test_a_non_zero_exit_keeps_its_code(tmp_path, monkeypatch):
    _fake_sta(tmp_path, monkeypatch, 'echo "Segmentation fault"\nexit 139\n')
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(ToolError, match=r"^OpenSTA failed with exit code 139 .*Segmentation fault$"):
        sta.run(run, "puts hi\n", step="sta")


@pytest.mark.tools
def test_real_opensta_error_is_reported(tmp_path):
    need_tools("sta")
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(ToolError, match=r"^OpenSTA failed: Error: cannot read file .*missing\.lib"):
        sta.run(run, f"read_liberty {tmp_path / 'missing.lib'}\nputs AXF_DELAY\n", step="sta")


def test_sta_result_takes_keywords_only():
    with pytest.raises(TypeError):
        sta.StaResult(1.0, 10.0)  # type: ignore[misc]
    assert sta.StaResult(delay_ns=1.0, clock_period_ns=10.0, power_w=1e-3).energy_pj == pytest.approx(10.0)
