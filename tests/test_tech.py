"""Technologies: Liberty reading, gate-to-cell binding, and the ways a technology is named."""

from __future__ import annotations

import shutil

import pytest

import tech
from core.errors import ConfigError
from tech import liberty


@pytest.mark.parametrize("function, inputs, table", [
    ("!(A&B)", ["A", "B"], 0b0111), ("(A B)'", ["A", "B"], 0b0111), ("A+B", ["A", "B"], 0b1110),
    ("(A^B^CI)", ["A", "B", "CI"], 0b10010110), ("!A1 | !A2", ["A1", "A2"], 0b0111),
    ("((A&B)|(A&CI)|(B&CI))", ["A", "B", "CI"], 0b11101000), ("!(A*B+C)", ["A", "B", "C"], 0b00000111),
    ("1", [], 0b1), ("A'", ["A"], 0b01),
], ids=["nand", "postfix-not", "plus", "xor3", "or-of-nots", "majority", "aoi21", "const", "inv"])
def test_function_truth_tables(function, inputs, table):
    assert liberty.truth_table(function, inputs) == table


def test_osu018_binds_the_smallest_cells():
    t = tech.load("osu018")
    cells = {g: c.cell for g, c in t.gates.items()}
    assert cells == {"AND": "AND2X1", "NAND": "NAND2X1", "OR": "OR2X1", "NOR": "NOR2X1", "XOR": "XOR2X1",
                     "XNOR": "XNOR2X1", "NOT": "INVX1"}
    assert t.gate_area("NAND") == 24.0 and t.transistors("XOR") == 10
    assert t.default_load > 0 and t.liberty.is_file() and all(p.is_file() for p in t.verilog)
    assert t is tech.load("osu018")  # immutable and cached


def test_unknown_technology_lists_the_choices():
    with pytest.raises(ConfigError, match=r"^TECH must be a built-in technology or a path .*, not 'tsmc7' "
                                          r"\(choices: osu018, osu035, osu050\)$"):
        tech.load("tsmc7")


def _copy_without(tmp_path, cell_name: str):
    src = tech.load("osu018").liberty
    text = src.read_text()
    start = text.index(f"cell ({cell_name})")
    depth, i = 0, text.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            break
    d = tmp_path / "lib"
    d.mkdir()
    (d / "cut.lib").write_text(text[:start] + text[i:])
    shutil.copy(tech.load("osu018").verilog[0], d / "cells.v")
    return d


def test_liberty_without_a_needed_gate_is_an_error(tmp_path):
    d = _copy_without(tmp_path, "XOR2X1")
    with pytest.raises(ConfigError, match=r"^Liberty .*cut\.lib has no cell for the XOR gate the flow needs "
                                          r"\(needed: AND, NAND, OR, NOR, XOR, XNOR, NOT\)$"):
        tech.load(d)


def test_toml_description_and_pinned_cells(tmp_path):
    osu = tech.load("osu018")
    (tmp_path / "t.toml").write_text(
        f'name = "mine"\nliberty = "{osu.liberty}"\nverilog = ["{osu.verilog[0]}"]\n[cells]\nAND = "AND2X2"\n')
    t = tech.load(tmp_path / "t.toml")
    assert t.name == "mine" and t.gates["AND"].cell == "AND2X2"
    (tmp_path / "bad.toml").write_text(f'liberty = "{osu.liberty}"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"has unknown key 'colour' \(valid keys: cells, liberty, name, verilog\)$"):
        tech.load(tmp_path / "bad.toml")


def test_not_a_liberty_file(tmp_path):
    (tmp_path / "x.lib").write_text("hello\n")
    (tmp_path / "x.v").write_text("module x; endmodule\n")
    with pytest.raises(ConfigError, match=r"is not a Liberty file"):
        tech.load(tmp_path / "x.lib")


def test_gf180_binds_its_cells(gf180_dir):
    t = tech.load(gf180_dir)
    assert t.gates["NAND"].cell == "gf180mcu_fd_sc_mcu9t5v0__nand2_1"
    assert t.gates["NOT"].cell == "gf180mcu_fd_sc_mcu9t5v0__inv_1"
    assert t.tie_lo and t.tie_hi and len(t.verilog) == 2
