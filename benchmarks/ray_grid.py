"""Serial vs Ray on a 21-job synth grid (7 models x 3 seeds, synth-intra + synth-inter).

Target: with 2 Ray workers on this 2-core machine the grid runs >= 1.6x faster than serially,
Ray start-up included (and reported separately). Each executor gets a fresh checkpoint cache
and results folder, so both really train every job.

Usage: python benchmarks/ray_grid.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [f"text-only:epochs=2,hidden={h}" for h in (8, 12, 16, 20, 24, 28, 32)]


def timed_grid(executor, tmp: Path) -> float:
    from msabench import executors, protocols
    from msabench.data import synth

    os.environ["MSABENCH_CACHE"] = str(tmp / "cache")
    plan = [protocols.load("synth-intra"), protocols.load("synth-inter")]
    data = {("synth-mosi", "aligned_50"): synth.make_dataset()}
    t0 = time.perf_counter()
    report = executors.run_grid(plan, MODELS, data, tmp / "out", executor, progress=False)
    elapsed = time.perf_counter() - t0
    assert not report.failures, report.failures
    return elapsed


def main() -> None:
    import ray

    from msabench import executors

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        serial = timed_grid(executors.SerialExecutor(), Path(a))
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        startup = time.perf_counter() - t0
        try:
            distributed = timed_grid(executors.RayExecutor(), Path(b))
        finally:
            ray.shutdown()
    jobs = len(MODELS) * 3
    print(f"{jobs}-job synth grid: serial {serial:.1f} s; ray (2 workers) {distributed:.1f} s + start-up {startup:.1f} s "
          f"= speed-up {serial / (distributed + startup):.2f}x with start-up, {serial / distributed:.2f}x without "
          "(target >= 1.6x)")


if __name__ == "__main__":
    main()
