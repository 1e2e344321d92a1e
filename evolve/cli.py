"""``flow.py evolve``: the command line of :mod:`evolve.job`."""

from __future__ import annotations

import argparse

from core import config
from evolve.job import EvolveConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, EvolveConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from evolve import job

    cfg = config.from_namespace(EvolveConfig, args)
    given = {f.name: getattr(args, f.name) for f in config.fields(EvolveConfig)
             if getattr(args, f.name, None) is not None}
    report = job.run(cfg, given=given, progress=not args.quiet)
    v = report["verification"]
    print(f"{report['design']} EPS={report['eps']:g}: WCE {report['wce']} (limit {report['wce_limit']}), "
          f"area ratio {report['area_ratio']:.4f}, power ratio {report['power_ratio']:.4f}, "
          f"delay ratio {report['delay_ratio']:.4f}; verification {'passed' if v['passed'] else 'FAILED'}; "
          f"{cfg.directory() / 'report.md'}")
    return 130 if report["interrupted"] else 0
