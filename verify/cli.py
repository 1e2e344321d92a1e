"""``flow.py verify RUN_DIR``: simulate a run's shipped Verilog again against its tables.

Checks that ``approx.v`` and its mapped cells reproduce ``lut.npy`` bit for bit (or, for designs too
wide for a table, the evolution model on sampled vectors) and stay within the run's WCE limit.
Results go to ``RUN_DIR/reverify.json``; the exit code is non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.errors import ConfigError, VerificationError
from core.run import RunDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="an evolve run directory")
    parser.add_argument("--seed", type=int, default=1, help="cocotb seed (default: 1)")


def main(args: argparse.Namespace) -> int:
    import tech
    from evolve.evaluator import Evaluator
    from evolve.netlist import load
    from verify import golden
    from verify.multiplier import Shape, simulate, vectors

    path: Path = args.run_dir
    report_path = path / "report.json"
    if not report_path.is_file():
        raise ConfigError(f"{path} is not a finished evolve run (no report.json)")
    r = json.loads(report_path.read_text())
    for name in ("approx.v", "approx.json", f"approx_{r['tech']}.v"):
        if not (path / name).is_file():
            raise ConfigError(f"{path} has no {name} to verify")
    cfg = json.loads((path / "config.json").read_text())
    t = tech.load(cfg["settings"]["tech"])
    shape = Shape(r["wa"], r["wb"], r["signed"])
    a, b, sampled = vectors(shape, args.seed)
    if (path / "lut.npy").is_file():
        lut = np.load(path / "lut.npy")
        if lut.shape != (1 << shape.wa, 1 << shape.wb):
            raise ConfigError(f"{path / 'lut.npy'} has shape {lut.shape}, not {(1 << shape.wa, 1 << shape.wb)}")
        model = golden.encode(lut[a, b].astype(np.int64), shape.nb)
        expected = "lut.npy"
    else:
        net = load(path / "approx.json")
        model = golden.encode(Evaluator(shape.wa, shape.wb, shape.signed, net.n_addr,
                                        vectors=(a << shape.wb) | b).outputs(net), shape.nb)
        expected = "approx.json (evolution model)"
    run = RunDir(path)
    results = {}
    for name, sources in (("reverify_gates", [path / "approx.v"]),
                          ("reverify_mapped", [path / f"approx_{r['tech']}.v", *t.verilog])):
        res = simulate(run, name, sources, r["module"], shape, a, b, model, wce_limit=r["wce_limit"], seed=args.seed)
        results[name] = {**res.as_report(), "expected": expected}
    passed = all(v["passed"] for v in results.values())
    run.write_json("reverify.json", {"passed": passed, "vectors": len(a), "exhaustive": not sampled,
                                     "benches": results})
    for name, v in results.items():
        print(f"{name}: {'pass' if v['passed'] else 'FAIL'} ({v.get('vectors')} vectors, "
              f"{v.get('mismatches')} mismatches, WCE {v.get('wce')} <= {r['wce_limit']})")
    if not passed:
        raise VerificationError(f"{path}: the shipped Verilog does not reproduce {expected}")
    return 0
