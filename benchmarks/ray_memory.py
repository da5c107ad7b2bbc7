"""Peak memory of a Ray worker running one grid job, relative to the dataset's in-memory size.

Target: a worker's peak memory stays below 2x the dataset's size (the object store shares the
dataset between workers, so a job must not hold private copies of it).

What runs. For each size in SCALES a fresh 2-CPU local Ray cluster runs the real
`executors.run_grid(..., RayExecutor())` twice: a warm-up pass on a tiny dataset, then the
measured pass; each pass is two jobs (MODEL, seeds 1111 and 1112, each fitted once and evaluated
under synth-intra and synth-inter), one per worker. The data is synth-mosi with every split
scaled and vision_dim=80 (19 kB per sample instead of 7 kB, so that a few hundred MB cost little
training); its size is the sum of `nbytes` over every array of every split.

What "worker memory" means (the worker process; Linux /proc/PID/smaps_rollup via psutil):
- RSS counts every page the worker touched, the object-store pages of the dataset it read
  included. Those pages are shared (one physical copy per node, whatever the number of workers),
  so RSS over-counts what a worker costs. Its peak is the kernel's `ru_maxrss` (exact).
- USS (unique set size) counts the pages only this process maps: its private allocations
  (copies, masks, activations, results, imported modules). Object-store pages never count. Its
  peak is sampled every SAMPLE_S by a thread in the job.
- Baselines, each taken when a job starts, before it reads the dataset (the dataset's arrays
  arrive as zero-copy read-only views of the object store and cost nothing until read):
  "cold" = the worker as started, with Ray, torch and the model's module imported (the warm-up
  job's start); "warm" = the same worker after that one earlier job (the measured job's start),
  which is what every job but a worker's first sees in a grid.
The figures: (peak - baseline) / dataset size, for RSS (an upper bound: it includes the shared
pages once) and USS (what each extra worker really adds); both must stay < 2. The last lines fit
peak - cold baseline = fixed + slope x size on the two largest sizes.

Findings (text-only:epochs=1,hidden=8; 40, 121 and 282 MB): no job copies the dataset. RSS grows
by 0.99x the dataset size (the worker reads all of it once, from the shared object store); USS
grows with the test split only until the corrupted chunk that batches are cut from reaches its
cap (`runner.CHUNK_BYTES`, 64 MB), then stops (0.01x between 121 and 282 MB); the float64 casts
and the `np.require(..., "W")` copies in `Batch.to_torch` are per batch. On top comes a fixed
~200 MB (RSS 219, USS 194), paid by a worker's first job: ~70 MB is torch importing
torch._inductor (some 800 modules) on the first `torch.use_deterministic_algorithms` call, the
rest the 64 MB chunk, masks, torch's allocator and the model. Measured from the warm baseline
every size meets the target (at most 1.95x RSS, 0.93x USS); from the cold one, RSS meets it from
about 220 MB and small data does not (4.6x at 40 MB). MMSA's real files are past that point: the
768-d BERT features of MOSI's aligned_50 alone are 2199 x 50 x 768 float32 = 338 MB.

How the job is observed. `RayExecutor.run` wraps the module-level name `executors.execute` in
`ray.remote`; the benchmark points that name at `measured_execute` (defined here, shipped to the
workers by value), which starts the sampling thread, calls the real `execute` on the dataset
exactly as the executor passed it, and appends one JSON line per job to a log file. Product code
has no hook for this.

Usage: python benchmarks/ray_memory.py [--scales 1 3 7] [--model text-only:epochs=1,hidden=8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_SIZES = (1284, 229, 686)  # synth-mosi's (MOSI's) train / valid / test
VISION_DIM = 80  # wider frames than synth-mosi's 20: 19 kB per sample, so size grows faster than compute
SCALES = (1, 3, 7)  # x BASE_SIZES: 40, 121 and 282 MB (MB = 2^20 bytes)
MODEL = "text-only:epochs=1,hidden=8"
SEEDS = [1111, 1112]  # two jobs: one per worker
SAMPLE_S = 0.05
TARGET = 2.0
MB = 1 << 20


def make_measured_execute(log_path: str, sample_s: float):
    """`executors.execute` plus a memory record per job, appended to `log_path` (runs in the worker)."""

    def measured_execute(job, dataset, test=None):
        import resource
        import threading

        import psutil  # shipped with Ray (ray/thirdparty_files)
        import torch  # noqa: F401  what the job imports anyway: part of the baseline

        from msabench import executors, submission
        from msabench import torch_baseline as tb  # noqa: F401

        submission.load(job.model)  # the model's module imported too
        proc = psutil.Process()
        base = proc.memory_full_info()
        peak = {"uss": base.uss, "pss": base.pss, "rss": base.rss}
        stop = threading.Event()

        def sample():
            while not stop.wait(sample_s):
                m = proc.memory_full_info()
                for k in peak:
                    peak[k] = max(peak[k], getattr(m, k))

        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.perf_counter()
        sampler.start()
        try:
            units = executors.execute(job, dataset, test)
        finally:
            stop.set()
            sampler.join()
        end = proc.memory_full_info()
        for k in peak:
            peak[k] = max(peak[k], getattr(end, k))
        record = {
            "pid": os.getpid(), "seed": job.seed, "seconds": time.perf_counter() - t0,
            "base_rss": base.rss, "base_uss": base.uss, "base_pss": base.pss,
            "peak_rss": max(peak["rss"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            "peak_uss": peak["uss"], "peak_pss": peak["pss"], "end_rss": end.rss, "end_uss": end.uss,
        }
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return units

    return measured_execute


def dataset_bytes(dataset) -> int:
    return sum(a.nbytes for split in dataset.splits.values() for a in split.arrays().values())


def make_data(scale: int, seed: int = 0):
    from msabench.data import synth

    return synth.make_dataset(seed=seed, sizes=tuple(n * scale for n in BASE_SIZES), vision_dim=VISION_DIM)


def measure(scale: int, model: str, tmp: Path) -> tuple[int, list[dict], float]:
    """One fresh cluster: a warm-up pass on a tiny dataset, then the measured pass; one record per job."""
    import ray

    from msabench import executors, protocols
    from msabench.data import synth

    key = ("synth-mosi", "aligned_50")
    plan = [protocols.load("synth-intra"), protocols.load("synth-inter")]
    tiny = synth.make_dataset(seed=1, sizes=(64, 32, 32), vision_dim=VISION_DIM)
    data = make_data(scale)
    size = dataset_bytes(data)
    os.environ["MSABENCH_CACHE"] = str(tmp / f"cache-{scale}")  # before ray.init: the workers inherit it
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    real = executors.execute
    logs = {phase: tmp / f"{phase}-{scale}.jsonl" for phase in ("warm-up", "measured")}
    try:
        for phase, dataset in (("warm-up", tiny), ("measured", data)):
            # RayExecutor.run wraps the module-level name `execute` in ray.remote when it runs
            executors.execute = make_measured_execute(str(logs[phase]), SAMPLE_S)
            t0 = time.perf_counter()
            report = executors.run_grid(plan, [model], {key: dataset}, tmp / f"out-{phase}-{scale}",
                                        executors.RayExecutor(), seeds=SEEDS, progress=False)
            elapsed = time.perf_counter() - t0
            assert not report.failures, report.failures
    finally:
        executors.execute = real
        ray.shutdown()
    warm = {r["pid"]: r for r in map(json.loads, logs["warm-up"].read_text().splitlines())}
    records = [json.loads(line) for line in logs["measured"].read_text().splitlines()]
    assert len(records) == len(SEEDS), records
    for r in records:  # cold: the worker as it started (Ray, torch and the model imported, nothing run)
        first = warm.get(r["pid"], r)
        r["cold_rss"], r["cold_uss"], r["warmed"] = first["base_rss"], first["base_uss"], r["pid"] in warm
    return size, records, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES))
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args()

    rows, t_all = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            size, records, elapsed = measure(scale, args.model, Path(tmp))
            rows += [(scale, size, r) for r in sorted(records, key=lambda r: r["seed"])]
    print(f"Ray worker memory per job: {args.model} on synth-intra + synth-inter, 2 workers, "
          f"synth-mosi with vision_dim={VISION_DIM}; MB = 2^20 bytes")
    print("cold = the worker as started (Ray + torch + model module imported); warm = after one earlier job")
    head = (f"{'samples':>7} {'dataset':>9} {'seed':>5} {'job s':>6} | {'RSS cold':>8} {'warm':>6} {'peak':>6} | "
            f"{'USS cold':>8} {'warm':>6} {'peak':>6} | {'(peak-warm)/size':>16} | {'(peak-cold)/size':>16} | verdict")
    print(head)
    print(f"{'':>33}| {'MB':^22} | {'MB':^22} | {'RSS':>7} {'USS':>8} | {'RSS':>7} {'USS':>8} | (< {TARGET:g}x)")
    print("-" * len(head))
    ok_warm = ok_cold = True
    for scale, size, r in rows:
        warm_rss, warm_uss = (r["peak_rss"] - r["base_rss"]) / size, (r["peak_uss"] - r["base_uss"]) / size
        cold_rss, cold_uss = (r["peak_rss"] - r["cold_rss"]) / size, (r["peak_uss"] - r["cold_uss"]) / size
        w, c = max(warm_rss, warm_uss) < TARGET, max(cold_rss, cold_uss) < TARGET
        ok_warm, ok_cold = ok_warm and w, ok_cold and c
        print(f"{sum(BASE_SIZES) * scale:>7} {size / MB:>6.1f} MB {r['seed']:>5} {r['seconds']:>6.1f} | "
              f"{r['cold_rss'] / MB:>8.0f} {r['base_rss'] / MB:>6.0f} {r['peak_rss'] / MB:>6.0f} | "
              f"{r['cold_uss'] / MB:>8.0f} {r['base_uss'] / MB:>6.0f} {r['peak_uss'] / MB:>6.0f} | "
              f"{warm_rss:>6.2f}x {warm_uss:>7.2f}x | {cold_rss:>6.2f}x {cold_uss:>7.2f}x | "
              f"warm {'PASS' if w else 'FAIL'}, cold {'PASS' if c else 'FAIL'}{'' if r['warmed'] else ' (not warmed)'}")
    sizes = sorted({(scale, size) for scale, size, _ in rows})
    if len(sizes) >= 2:
        (a, sa), (b, sb) = sizes[-2], sizes[-1]

        def worst(scale, key, base):
            return max(r[key] - r[base] for s, _, r in rows if s == scale)

        for label, key in (("RSS", "rss"), ("USS", "uss")):
            slope = (worst(b, f"peak_{key}", f"cold_{key}") - worst(a, f"peak_{key}", f"cold_{key}")) / (sb - sa)
            fixed = worst(b, f"peak_{key}", f"cold_{key}") - slope * sb
            print(f"{label}: peak - cold baseline = {fixed / MB:.0f} MB + {slope:.2f} x dataset size "
                  "(fitted on the two largest sizes)")
    print(f"target: peak - baseline < {TARGET:g}x dataset size per worker: "
          f"warm workers {'met' if ok_warm else 'NOT met'}, "
          f"first job on a fresh worker {'met' if ok_cold else 'NOT met'} ({time.perf_counter() - t_all:.0f} s in all)")


if __name__ == "__main__":
    main()
