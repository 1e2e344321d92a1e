"""The import layers of STYLE.md hold: `lint-imports` keeps every contract of pyproject.toml, and every
module of the packages is placed in the layers contract (so a new module cannot slip past it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]


def test_import_contracts_are_kept(tmp_path):
    # the CLI in a child process: grimp reads the packages from the repository root, its cache goes nowhere
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(no_cache=True, no_logo=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    kept = re.search(r"Contracts: (\d+) kept, (\d+) broken", proc.stdout)
    assert kept is not None and int(kept.group(2)) == 0
    assert int(kept.group(1)) == len(_settings()["contracts"])


def test_every_module_is_in_a_layer():
    settings = _settings()
    layers = next(c for c in settings["contracts"] if c["id"] == "layers")["layers"]
    placed = {m.strip() for layer in layers for m in re.split(r"[:|]", layer)}
    modules = set()
    for package in settings["root_packages"]:
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py":
                modules.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    unplaced = {m for m in modules if not any(m == p or m.startswith(p + ".") for p in placed)}
    assert not unplaced, f"modules in no layer of pyproject.toml [tool.importlinter]: {sorted(unplaced)}"
