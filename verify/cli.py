"""``flow.py verify RUN_DIR``: prove a run's WCE again and simulate its shipped Verilog against its tables.

The shipped ``approx.v`` is read back by Yosys into a gate netlist and its worst-case error proven
again on every input pair (:mod:`verify.wce`: exhaustive where it fits ``--proof-timeout``, else SAT);
it must equal the report's ``wce`` and be within the run's limit. Then ``approx.v`` and its mapped
cells are simulated against ``lut.npy`` bit for bit (or, for designs too wide for a table, against the
netlist on a sample, the corner cases and more) and held to the limit.
Everything it writes goes under ``RUN_DIR/reverify/``, a run directory of its own (``reverify.json``,
``COMMANDS``, ``logs/``, ``sim_build/``), replaced as a whole by the next ``verify``: no file the
evolve run wrote is touched. The exit code is non-zero when a check fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import multrun
from core.errors import ConfigError, VerificationError
from core.multrun import MultiplierRun
from core.run import RunDir, locked, read_json

OUT = "reverify"  # the subdirectory of the run that holds what verify writes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="an evolve run directory")
    parser.add_argument("--seed", type=int, default=1, help="cocotb seed (default: 1)")
    parser.add_argument("--proof-timeout", type=float, default=600.0,
                        help="seconds the WCE proof may take (default: 600)")


def main(args: argparse.Namespace) -> int:
    import tech
    from core import golden
    from evolve.evaluator import Evaluator
    from evolve.netlist import load
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
    run_files = MultiplierRun.load(path, wa, wb, is_signed, need=(multrun.VERILOG, multrun.NETLIST,
                                                                   multrun.mapped(tech_name), multrun.CONFIG))
    cfg = read_json(path / "config.json", "run configuration")
    try:
        t = tech.load(cfg["settings"]["tech"])
    except (KeyError, TypeError):
        raise ConfigError(f"run configuration {path / 'config.json'} must hold settings.tech") from None
    shape = Shape(wa, wb, is_signed)
    a, b, sampled = vectors(shape, args.seed)
    if (path / "lut.npy").is_file():
        lut = run_files.lut()
        model = golden.encode(lut[a, b], shape.nb)
        expected = "lut.npy"
    else:
        net = load(path / "approx.json")
        model = golden.encode(Evaluator(shape.wa, shape.wb, shape.signed, net.n_addr,
                                        vectors=(a << shape.wb) | b).outputs(net), shape.nb)
        expected = "approx.json (evolution model)"
    if not args.proof_timeout > 0:
        raise ConfigError(f"PROOF_TIMEOUT must be > 0 s, not {args.proof_timeout!r}")
    results: dict = {}
    # the run's lock: no evolve may rewrite the run meanwhile; the results are a run of their own inside it
    with locked(path), RunDir.open(path / OUT, overwrite=True, results=("reverify.json",)) as run:
        results["reprove"] = _reprove(run, path, module, str(r.get("design", "")), shape, int(r["wce"]), wce_limit,
                                      args.proof_timeout)
        if results["reprove"]["passed"]:
            print(f"reprove: pass (WCE {results['reprove']['wce']} <= {wce_limit}, proven by "
                  f"{results['reprove']['method']} in {results['reprove']['time_s']:.3g} s)")
            for name, sources in (("reverify_gates", [path / "approx.v"]),
                                  ("reverify_mapped", [path / f"approx_{tech_name}.v", *t.verilog])):
                res = simulate(run, name, sources, module, shape, a, b, model, wce_limit=wce_limit, seed=args.seed)
                results[name] = {**res.as_report(), "expected": expected}
        passed = all(v["passed"] for v in results.values())
        run.write_json("reverify.json", {"passed": passed, "vectors": len(a), "exhaustive": not sampled,
                                         "benches": results})
    # raised after the block, so that the results of a failed check replace the previous ones too
    if not results["reprove"]["passed"]:
        raise VerificationError(f"{path}: reprove failed: {results['reprove']['message']}")
    for name, v in results.items():
        if name == "reprove":
            continue
        print(f"{name}: {'pass' if v['passed'] else 'FAIL'} ({v.get('vectors')} vectors, "
              f"{v.get('mismatches')} mismatches, {_wce_line(v, wce_limit)})")
    if not passed:
        failed = next(n for n, v in results.items() if not v["passed"])
        v = results[failed]
        what = (f"WCE {v.get('wce')} > {wce_limit}, the run's limit" if _wce_failed(v, wce_limit)
                else f"{v.get('mismatches')} mismatches against {expected}")
        raise VerificationError(f"{path}: {failed} failed: {what}")
    return 0


def _reprove(run: RunDir, path: Path, module: str, design: str, shape, wce: int, limit: int,
             timeout: float) -> dict:
    """The WCE of the shipped approx.v, read back by Yosys, proven on every input pair."""
    from evolve.netlist import Netlist
    from ppa import yosys
    from verify import wce as prover

    build = run.path / "sim_build" / "reprove"
    build.mkdir(parents=True, exist_ok=True)
    top = yosys.read_gates(run, path / "approx.v", build / "approx_read.json", build / "approx_read.v",
                           step="reprove_read")
    if top != module:
        return {"passed": False, "message": f"approx.v's top is {top}, not the report's {module}"}
    import json

    net = Netlist.from_yosys_json(json.loads((build / "approx_read.json").read_text()), top, shape.wa, shape.wb,
                                  shape.signed, source=str(path / "approx.v"))
    reference = None  # the run's exact seed (Yosys proved it equal to the RTL): smaller SAT miters
    seed = path / "seed.json"
    if seed.is_file() and shape.nb > 16:
        try:
            reference = Netlist.from_yosys_json(json.loads(seed.read_text()), design, shape.wa, shape.wb, shape.signed)
        except (ValueError, KeyError, ConfigError):
            reference = None
    try:
        proof = prover.exact_wce(net, timeout=timeout, threads=2, reference=reference)
    except prover.ProofTimeout as e:
        return {"passed": False, "message": f"the WCE could not be proven within --proof-timeout {timeout:g} s ({e})"}
    out = {**proof.as_report(), "report_wce": wce, "limit": limit}
    if proof.wce != wce:
        return {**out, "passed": False, "message": f"the proven WCE {proof.wce} is not the report's {wce}"}
    if proof.wce > limit:
        return {**out, "passed": False, "message": f"the proven WCE {proof.wce} is above the limit {limit}"}
    return {**out, "passed": True}


def _wce_failed(v: dict, limit: int) -> bool:
    return v.get("wce") is not None and v["wce"] > limit


def _wce_line(v: dict, limit: int) -> str:
    """``WCE 2 <= 3`` when the limit holds, ``WCE 48 > 3 (FAILED)`` when it does not."""
    if v.get("wce") is None:
        return f"WCE not measured (limit {limit})"
    return f"WCE {v['wce']} <= {limit}" if not _wce_failed(v, limit) else f"WCE {v['wce']} > {limit} (FAILED)"
