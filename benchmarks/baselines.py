"""Training and evaluation time of the bundled models on synth-mosi (one seed, this machine).

Targets: one seed of each of PRLF, DERL and FIRF trains in <= 3 minutes; evaluating a trained
model over all synth-intra conditions takes <= 20 s. A fresh checkpoint cache is used, so
every model really trains. Each model is timed on one torch thread (the exact single-thread
mode, as earlier versions always ran) and on every CPU of the machine (the default), in one
run, so the speed-up is a ratio measured under the same conditions.

Usage: python benchmarks/baselines.py [--models prlf derl firf ...] [--seed 1111] [--threads 1 N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["prlf", "derl", "firf", "late-fusion", "text-only"])
    ap.add_argument("--seed", type=int, default=1111)
    ap.add_argument("--threads", nargs="+", type=int, default=None, help="default: 1 and all CPUs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MSABENCH_CACHE"] = cache
        from msabench import devices, masking, protocols, runner, submission
        from msabench.data import synth

        threads = args.threads or sorted({1, devices.available_cpus()})
        dataset = synth.make_dataset()
        protocol = protocols.load("synth-intra")
        split = dataset[protocol.split]
        observed = masking.observed(protocol, split, args.seed)
        for name in args.models:
            fits = {}
            for n in threads:
                sub = submission.load(f"{name}:threads={n}")
                runner.seed_everything(args.seed)
                model = sub.build(dataset.info)
                model.log = lambda msg: None
                t0 = time.perf_counter()
                model.fit(dataset["train"], dataset["valid"], args.seed)
                fit_s = fits[n] = time.perf_counter() - t0
                t0 = time.perf_counter()
                pred = runner.predict_conditions(model, split, protocol, observed, args.seed, 64, name)
                eval_s = time.perf_counter() - t0
                epochs = len(getattr(model, "history", []))
                print(f"{name}, {n} thread(s): fit {fit_s:.1f} s ({epochs} epochs; target <= 180 s), "
                      f"evaluation over {len(protocol.conditions)} synth-intra conditions x {len(split)} samples "
                      f"{eval_s:.1f} s (target <= 20 s); {pred.size} predictions", flush=True)
            if len(fits) > 1:
                print(f"{name}: {max(fits)} threads fit {fits[min(fits)] / fits[max(fits)]:.2f}x as fast as "
                      f"{min(fits)} (the epochs can differ: another thread count trains other bits)", flush=True)


if __name__ == "__main__":
    main()
