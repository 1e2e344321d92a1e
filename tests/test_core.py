"""Typed configuration, run directories and tool discovery."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import config, tools
from core.config import check_range, option
from core.errors import ConfigError, ToolError, ToolMissing
from core.run import RunDir


@dataclass(frozen=True)
class Demo:
    eps: float = option(0.5, help="a fraction")
    bits: int = option(8, help="a width")
    mode: str = option("a", choices=("a", "b"), help="a choice")
    flag: bool = option(False, help="a switch")
    path: Path | None = option(None, help="a file")
    widths: tuple[int, ...] = option((1, 2), help="several")

    def __post_init__(self) -> None:
        check_range("EPS", self.eps, 0.0, 1.0, lo_open=True, hi_open=True)


@pytest.mark.parametrize("data, message", [
    ({"eps": "x"}, r"^EPS must be a number, not 'x'$"),
    ({"eps": "1.5"}, r"^EPS must be in \(0, 1\), not 1\.5$"),
    ({"bits": "8.5"}, r"^BITS must be an integer, not '8\.5'$"),
    ({"mode": "c"}, r"^MODE must be one of the listed choices, not 'c' \(choices: a, b\)$"),
    ({"flag": "maybe"}, r"^FLAG must be a boolean"),
    ({"nope": 1}, r"^configuration has unknown key 'nope' \(valid keys: bits, eps, flag, mode, path, widths\)$"),
], ids=["float", "range", "int", "choice", "bool", "unknown-key"])
def test_bad_values_name_the_setting(data, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict(Demo, data)


def test_values_are_converted_from_strings():
    d = config.from_dict(Demo, {"eps": "0.25", "bits": "0x10", "flag": "yes", "path": "a/b", "widths": "3 4"})
    assert (d.eps, d.bits, d.flag, d.path, d.widths) == (0.25, 16, True, Path("a/b"), (3, 4))
    assert config.to_dict(d) == {"eps": 0.25, "bits": 16, "mode": "a", "flag": True, "path": "a/b", "widths": [3, 4]}


def test_command_line_from_dataclass():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, Demo)
    ns = parser.parse_args(["--eps", "0.1", "--flag", "--widths", "5", "6"])
    d = config.from_namespace(Demo, ns)
    assert (d.eps, d.flag, d.widths, d.bits) == (0.1, True, (5, 6), 8)


def test_mutable_defaults_are_refused():
    with pytest.raises(TypeError):
        option([1], help="x")


def test_existing_run_is_not_replaced_silently(tmp_path):
    run = RunDir.create(tmp_path / "r")
    (run.path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^run directory .* already exists \(use --overwrite"):
        RunDir.create(tmp_path / "r")
    assert (run.path / "keep.txt").read_text() == "mine"
    assert RunDir.create(tmp_path / "r", resume=True).path == run.path
    RunDir.create(tmp_path / "r", overwrite=True)
    assert not (run.path / "keep.txt").exists()


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(ConfigError, match=r"^run directory .* does not exist, so there is nothing to resume$"):
        RunDir.create(tmp_path / "none", resume=True)


def test_commands_and_numbered_logs(tmp_path):
    run = RunDir.create(tmp_path / "r")
    log1 = run.run("echo", ["echo", "hello world"], step="first")
    log2 = run.run("sh", ["sh", "-c", "echo oops >&2"], step="second")
    assert log1.name == "1_first.log" and log1.read_text() == "hello world\n"
    assert log2.name == "2_second.log" and log2.read_text() == "oops\n"
    commands = (run.path / "COMMANDS").read_text().splitlines()
    assert commands[0].endswith("&& echo 'hello world'") and commands[0].startswith("cd ")


def test_tool_failure_carries_code_log_and_tail(tmp_path):
    run = RunDir.create(tmp_path / "r")
    with pytest.raises(ToolError) as info:
        run.run("sh", ["sh", "-c", "for i in $(seq 1 30); do echo line$i; done; exit 3"], step="bad")
    err = info.value
    assert err.returncode == 3 and err.log.name == "1_bad.log"
    assert err.tail[-1] == "line30" and len(err.tail) == 10
    assert str(err).startswith("sh failed with exit code 3")


def test_missing_tool_names_its_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("YOSYS", raising=False)
    with pytest.raises(ToolMissing, match=r"^yosys not found: install the Debian package 'yosys'"):
        tools.YOSYS.require()


def test_tool_override_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STA", str(tmp_path / "no-such-sta"))
    with pytest.raises(ToolMissing, match=r"^OpenSTA not found at STA="):
        tools.STA.require()
