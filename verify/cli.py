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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import multrun, stage, tools
from core.config import option
from core.errors import ConfigError, VerificationError, must
from core.multrun import MultiplierRun
from core.run import RunDir, locked, read_json

OUT = "reverify"  # the subdirectory of the run that holds what verify writes


@dataclass(frozen=True)
class VerifyConfig:
    run: Path = option(help="an evolve run directory", cli=False)
    seed: int = option(1, help="cocotb seed")
    proof_timeout: float = option(600.0, unit="s", help="seconds the WCE proof may take")

    def __post_init__(self) -> None:
        if not self.proof_timeout > 0:
            raise must("PROOF_TIMEOUT", "> 0 s", self.proof_timeout)

    # the results are a run of their own, replaced by the next verify: never resumed
    overwrite = True
    resume = False


@dataclass
class Plan:
    """The run read and checked before anything is written."""

    report: dict[str, Any]
    shape: Any
    tech: Any
    a: Any
    b: Any
    sampled: bool
    model: Any
    expected: str


class VerifyStage(stage.Stage):
    """The WCE of a run's shipped ``approx.v`` proven again, and the Verilog simulated against its tables;
    the results go to ``RUN/reverify/reverify.json``, no file of the run itself is touched."""

    name = "verify"
    Config = VerifyConfig
    inputs = ("run",)
    outputs = ("config.json", "reverify.json")
    tools = (tools.YOSYS, tools.IVERILOG, tools.VVP)
    packages = ("cocotb", "numpy", "python-sat")
    results = ("reverify.json",)

    def directory(self, cfg: VerifyConfig, plan: Any) -> Path:
        return cfg.run / OUT

    def prepare(self, cfg: VerifyConfig, progress: bool) -> Plan:
        import tech
        from core import golden
        from evolve.evaluator import Evaluator
        from evolve.netlist import load
        from verify.multiplier import Shape, vectors

        path = cfg.run
        report_path = path / "report.json"
        if not report_path.is_file():
            raise ConfigError(f"{path} is not a finished evolve run (no report.json)")
        r = read_json(report_path, "run report")
        try:
            wa, wb, is_signed = int(r["wa"]), int(r["wb"]), bool(r["signed"])
            int(r["wce_limit"]), str(r["module"])
            tech_name = str(r["tech"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"run report {report_path} must hold wa, wb, signed, wce_limit, tech and module "
                              "(it is not an evolve report)") from None
        run_files = MultiplierRun.load(path, wa, wb, is_signed, need=(multrun.VERILOG, multrun.NETLIST,
                                                                       multrun.mapped(tech_name), multrun.CONFIG))
        try:
            t = tech.load(stage.stored_settings(path)["tech"])
        except KeyError:
            raise ConfigError(f"run configuration {path / 'config.json'} must hold settings.tech") from None
        shape = Shape(wa, wb, is_signed)
        a, b, sampled = vectors(shape, cfg.seed)
        if (path / "lut.npy").is_file():
            model = golden.encode(run_files.lut()[a, b], shape.nb)
            expected = "lut.npy"
        else:
            net = load(path / "approx.json")
            model = golden.encode(Evaluator(shape.wa, shape.wb, shape.signed, net.n_addr,
                                            vectors=(a << shape.wb) | b).outputs(net), shape.nb)
            expected = "approx.json (evolution model)"
        return Plan(r, shape, t, a, b, sampled, model, expected)

    def execute(self, cfg: Any, *, given: Any = None, progress: bool = True) -> dict[str, Any]:
        # the run's own lock: no evolve may rewrite the run meanwhile
        if not Path(cfg.run).is_dir():
            raise ConfigError(f"{cfg.run} is not a finished evolve run (no report.json)")
        with locked(cfg.run):
            return super().execute(cfg, given=given, progress=progress)

    def run(self, ctx: stage.Context) -> dict[str, Any]:
        from verify.multiplier import simulate

        cfg, run, p = ctx.cfg, ctx.run, ctx.plan
        r, path = p.report, cfg.run
        wce_limit, tech_name, module = int(r["wce_limit"]), str(r["tech"]), str(r["module"])
        results: dict = {}
        results["reprove"] = _reprove(run, path, module, str(r.get("design", "")), p.shape, int(r["wce"]),
                                      wce_limit, cfg.proof_timeout)
        if results["reprove"]["passed"]:
            for name, sources in (("reverify_gates", [path / "approx.v"]),
                                  ("reverify_mapped", [path / f"approx_{tech_name}.v", *p.tech.verilog])):
                res = simulate(run, name, sources, module, p.shape, p.a, p.b, p.model, wce_limit=wce_limit,
                               seed=cfg.seed)
                results[name] = {**res.as_report(), "expected": p.expected}
        passed = all(v["passed"] for v in results.values())
        report = {"passed": passed, "vectors": len(p.a), "exhaustive": not p.sampled, "benches": results,
                  "wce_limit": wce_limit, "expected": p.expected}
        run.write_json("reverify.json", report)
        ctx.reported = True
        return report

    def summary(self, cfg: Any, report: dict[str, Any]) -> str:
        benches, limit = report["benches"], report["wce_limit"]
        rp = benches["reprove"]
        if not rp["passed"]:
            return f"reprove: FAIL ({rp['message']})"
        lines = [f"reprove: pass (WCE {rp['wce']} <= {limit}, proven by {rp['method']} in {rp['time_s']:.3g} s)"]
        lines += [f"{name}: {'pass' if v['passed'] else 'FAIL'} ({v.get('vectors')} vectors, "
                  f"{v.get('mismatches')} mismatches, {_wce_line(v, limit)})"
                  for name, v in benches.items() if name != "reprove"]
        return "\n".join(lines)

    def verdict(self, cfg: Any, report: dict[str, Any]) -> None:
        """Raised after the results are written, so that a failed check replaces the previous ones too."""
        benches, limit = report["benches"], report["wce_limit"]
        if not benches["reprove"]["passed"]:
            raise VerificationError(f"{cfg.run}: reprove failed: {benches['reprove']['message']}")
        if not report["passed"]:
            failed = next(n for n, v in benches.items() if not v["passed"])
            v = benches[failed]
            what = (f"WCE {v.get('wce')} > {limit}, the run's limit" if _wce_failed(v, limit)
                    else f"{v.get('mismatches')} mismatches against {report['expected']}")
            raise VerificationError(f"{cfg.run}: {failed} failed: {what}")


STAGE = VerifyStage()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_DIR", type=Path, help="an evolve run directory")
    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    return stage.main(STAGE, args)


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
