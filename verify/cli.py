"""``flow.py verify RUN_DIR``: simulate a run's shipped Verilog again against its tables.

Checks that ``approx.v`` and its mapped cells reproduce ``lut.npy`` bit for bit (or, for designs too
wide for a table, the evolution model on sampled vectors) and stay within the run's WCE limit.
Results go to ``RUN_DIR/reverify.json``; the exit code is non-zero when a check fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import ConfigError, VerificationError
from core.run import RunDir, read_json
from core.tables import read_lut


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
    r = read_json(report_path, "run report")
    try:
        wa, wb, is_signed = int(r["wa"]), int(r["wb"]), bool(r["signed"])
        wce_limit, tech_name, module = int(r["wce_limit"]), str(r["tech"]), str(r["module"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"run report {report_path} must hold wa, wb, signed, wce_limit, tech and module "
                          "(it is not an evolve report)") from None
    for name in ("approx.v", "approx.json", f"approx_{tech_name}.v"):
        if not (path / name).is_file():
            raise ConfigError(f"{path} has no {name} to verify")
    cfg = read_json(path / "config.json", "run configuration")
    try:
        t = tech.load(cfg["settings"]["tech"])
    except (KeyError, TypeError):
        raise ConfigError(f"run configuration {path / 'config.json'} must hold settings.tech") from None
    shape = Shape(wa, wb, is_signed)
    a, b, sampled = vectors(shape, args.seed)
    if (path / "lut.npy").is_file():
        lut = read_lut(path / "lut.npy", wa, wb, is_signed)
        model = golden.encode(lut[a, b], shape.nb)
        expected = "lut.npy"
    else:
        net = load(path / "approx.json")
        model = golden.encode(Evaluator(shape.wa, shape.wb, shape.signed, net.n_addr,
                                        vectors=(a << shape.wb) | b).outputs(net), shape.nb)
        expected = "approx.json (evolution model)"
    results = {}
    with RunDir.open(path, resume=True) as run:  # the lock: no evolve may rewrite the run meanwhile
        for name, sources in (("reverify_gates", [path / "approx.v"]),
                              ("reverify_mapped", [path / f"approx_{tech_name}.v", *t.verilog])):
            res = simulate(run, name, sources, module, shape, a, b, model, wce_limit=wce_limit, seed=args.seed)
            results[name] = {**res.as_report(), "expected": expected}
        passed = all(v["passed"] for v in results.values())
        run.write_json("reverify.json", {"passed": passed, "vectors": len(a), "exhaustive": not sampled,
                                         "benches": results})
    for name, v in results.items():
        print(f"{name}: {'pass' if v['passed'] else 'FAIL'} ({v.get('vectors')} vectors, "
              f"{v.get('mismatches')} mismatches, {_wce_line(v, wce_limit)})")
    if not passed:
        failed = next(n for n, v in results.items() if not v["passed"])
        v = results[failed]
        what = (f"WCE {v.get('wce')} > {wce_limit}, the run's limit" if _wce_failed(v, wce_limit)
                else f"{v.get('mismatches')} mismatches against {expected}")
        raise VerificationError(f"{path}: {failed} failed: {what}")
    return 0


def _wce_failed(v: dict, limit: int) -> bool:
    return v.get("wce") is not None and v["wce"] > limit


def _wce_line(v: dict, limit: int) -> str:
    """``WCE 2 <= 3`` when the limit holds, ``WCE 48 > 3 (FAILED)`` when it does not."""
    if v.get("wce") is None:
        return f"WCE not measured (limit {limit})"
    return f"WCE {v['wce']} <= {limit}" if not _wce_failed(v, limit) else f"WCE {v['wce']} > {limit} (FAILED)"
