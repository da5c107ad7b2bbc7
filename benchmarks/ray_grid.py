"""Serial vs Ray on a 21-job synth grid (7 models x 3 seeds, synth-intra + synth-inter).

Target: with 2 Ray workers on this 2-core machine the grid runs >= 1.6x faster than serially,
Ray start-up included (and reported separately). Each executor gets a fresh checkpoint cache
and results folder, so both really train every job: the benchmark checks that each executor's
cache ends up holding one checkpoint per job. It also prints the mean time per job in each
executor, as wall seconds (fit + predictions, from the result manifests) and CPU seconds (the
driver's for serial; the Ray worker processes' for Ray, their start-up and imports included).

Why an earlier version measured a super-linear speed-up (serial 80.7 s, Ray 27.3 s + 3.7 s
start-up: 2.6x on 2 cores). The workers of a local Ray cluster are processes started by
`ray.init`, and they keep the driver's environment as it was then. That version pointed
MSABENCH_CACHE at the Ray run's fresh cache only after `ray.init`, so the workers still used the
serial run's cache, which by then held all 21 checkpoints: every Ray job loaded its weights
instead of training them (fit_seconds 0.02-0.08 s against 1.1-2.5 s serially, "loaded
checkpoint" in the worker logs, nothing written to the Ray run's own cache) and only evaluation
was timed. It now sets the variable before `ray.init`. With both executors training, a job costs
the same in either: 3.20 CPU s per job serially and 3.26 on Ray (mean over the 21 jobs, measured
inside each job), the difference being the first-job cost below, paid by two workers instead of
one driver. Threads play no part: both executors give each job one CPU, i.e. one torch thread
(`SerialExecutor(1)`; by default the serial executor gives a job every core, which makes a
single job faster but is not the comparison of workers made here). The first
job in any process (the driver, each worker) costs about 1.3 s more, once:
`torch.use_deterministic_algorithms` imports torch._inductor (some 800 modules, ~70 MB). So the
speed-up is bounded by the number of workers, less start-up; and when another process holds a
core, Ray's wall time per job exceeds its CPU time per job (its workers wait for a core) while
the serial run, one process, still finds a free core: compare the two figures before trusting the speed-up.

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


def timed_grid(executor, tmp: Path) -> tuple[float, float, int]:
    """Elapsed seconds, mean seconds per job (fit + predictions, from the manifests), jobs run."""
    from msabench import executors, protocols
    from msabench.data import synth

    plan = [protocols.load("synth-intra"), protocols.load("synth-inter")]
    data = {("synth-mosi", "aligned_50"): synth.make_dataset()}
    t0 = time.perf_counter()
    report = executors.run_grid(plan, MODELS, data, tmp / "out", executor, progress=False)
    elapsed = time.perf_counter() - t0
    assert not report.failures, report.failures
    per_job: dict[tuple[str, int], float] = {}
    for unit in report.units:  # a job's units share its fit; each has its own predictions
        key = (unit.model + str(unit.manifest["submission_path"]), unit.seed)
        per_job.setdefault(key, unit.manifest["fit_seconds"])
        per_job[key] += unit.manifest["predict_seconds"]
    checkpoints = sum(1 for _ in (tmp / "cache").rglob("*.pt"))
    assert checkpoints == len(per_job), f"{checkpoints} checkpoints trained in {tmp / 'cache'} for {len(per_job)} jobs"
    return elapsed, sum(per_job.values()) / len(per_job), len(per_job)


def worker_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this driver's Ray worker processes."""
    import psutil  # shipped with Ray

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            name = proc.name()  # workers retitle themselves ray::IDLE, ray::execute, ...
            if name.startswith("ray::") and not name.endswith("Agent"):
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
        except psutil.Error:
            continue
    return total


def main() -> None:
    import ray

    from msabench import executors

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        os.environ["MSABENCH_CACHE"] = str(Path(a) / "cache")
        c0 = time.process_time()
        serial, serial_job, jobs = timed_grid(executors.SerialExecutor(1), Path(a))
        serial_cpu = (time.process_time() - c0) / jobs
        # before ray.init: the workers it starts take the driver's environment as it is now
        os.environ["MSABENCH_CACHE"] = str(Path(b) / "cache")
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        startup = time.perf_counter() - t0
        try:
            distributed, ray_job, _ = timed_grid(executors.RayExecutor(cpus_per_job=1), Path(b))
            ray_cpu = worker_cpu_seconds() / jobs
        finally:
            ray.shutdown()
    print(f"{jobs}-job synth grid: serial {serial:.1f} s; ray (2 workers) {distributed:.1f} s + start-up {startup:.1f} s "
          f"= speed-up {serial / (distributed + startup):.2f}x with start-up, {serial / distributed:.2f}x without "
          "(target >= 1.6x)")
    print(f"mean per job: serial {serial_job:.2f} s (fit + predictions), {serial_cpu:.2f} CPU s; "
          f"ray {ray_job:.2f} s, {ray_cpu:.2f} CPU s (workers' start-up included); "
          f"load average {load:.1f} on {os.cpu_count()} cores before the run")


if __name__ == "__main__":
    main()
