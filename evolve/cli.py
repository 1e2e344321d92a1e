"""``flow.py evolve``: the command line of the evolve stage (:class:`evolve.job.EvolveStage`)."""

from __future__ import annotations

import argparse

from core import stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evolve.job import STAGE

    stage.add_arguments(parser, STAGE)


def main(args: argparse.Namespace) -> int:
    from evolve.job import STAGE

    return stage.main(STAGE, args)
