"""The helper process of :func:`verify.sim.run_bench`: cocotb's Icarus runner, through its public API only.

``python -m verify.cocotb_run SPEC.json``; SPEC holds the keyword arguments of ``build`` and ``test``.
The runner runs the ``iverilog`` and ``vvp`` first on PATH, which the parent sets. Exit codes:
0 the benches ran (their results are in the JUnit XML), :data:`verify.sim.BUILD_FAILED` the build
failed, :data:`verify.sim.TEST_FAILED` the simulator exited non-zero; anything else is a failure of the
runner itself (its traceback is in the output).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

BUILD_FAILED, TEST_FAILED = 10, 11  # verify.sim's, kept here so this process imports nothing of the flow


def main(argv: list[str]) -> int:
    from cocotb_tools.runner import get_runner

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # into runner.log
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    build, test = spec["build"], spec["test"]
    runner = get_runner("icarus")
    try:
        runner.build(sources=build["sources"], hdl_toplevel=build["hdl_toplevel"], build_dir=build["build_dir"],
                     always=build["always"], timescale=tuple(build["timescale"]), log_file=build["log_file"],
                     build_args=build["build_args"])
    except RuntimeError as exc:  # a build command exited non-zero
        print(f"build failed: {exc}", file=sys.stderr)
        return BUILD_FAILED
    try:
        runner.test(test_module=test["test_module"], hdl_toplevel=test["hdl_toplevel"], build_dir=test["build_dir"],
                    test_dir=test["test_dir"], seed=test["seed"], results_xml=test["results_xml"],
                    log_file=test["log_file"], timescale=tuple(test["timescale"]), extra_env=test["extra_env"])
    except SystemExit as exc:  # the runner leaves this way when the simulator exits non-zero
        print(f"simulation failed: exit {exc.code}", file=sys.stderr)
        return TEST_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
