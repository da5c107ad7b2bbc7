"""Harness benchmarks: prints the figures the README reports (ratios measured in one process).

1. Harness overhead: `msabench run` of synth-intra (3 seeds x 10 rates, predictions
   written) with an already fitted model, divided by the time of the same model's
   bare `predict` calls over the same, pre-built inputs. Target <= 1.10. Two models:
   the example (about 7 us per sample, so the harness's fixed costs show) and one with
   the forward cost of a typical MSA baseline (Transformer encoders).
   Measured in-process (the pre-fitted model lives in this process).
2. Mask generation for a MOSEI-sized test split (4659 samples; 50/500/500 positions;
   10 rates; 3 seeds), both conventions. Target <= 1 s.
3. What isolation costs: the example submission trained and evaluated on synth-intra
   (3 seeds) with each job in the worker process, as `msabench run` does, against the
   same run in this process (`--in-process`); the worker is started cold each time, as
   it is for each `msabench run` command.

Usage: python benchmarks/harness.py [--repeats N] [--isolation-repeats N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msabench import executors, isolation, masking, protocols, submission  # noqa: E402
from msabench.data import synth  # noqa: E402
from msabench.data.core import Split  # noqa: E402

FITTED = {}  # the pre-fitted model handed to the harness by the submission below

PREFITTED = '''
import sys

def build(info):
    return sys.modules["__bench__"].FITTED["model"]
'''


def overhead(model_file: Path | str, repeats: int, dataset=None, protocol_name: str = "synth-intra") -> dict:
    """Best-of-`repeats` wall time of `executors.run` and of bare predict calls, same fitted model.

    `model_file`: a submission file or a bundled model spec (`prlf:device=cuda`).
    """
    sys.modules["__bench__"] = sys.modules[__name__]
    dataset = dataset or synth.make_dataset()
    protocol = protocols.load(protocol_name)
    model = submission.load(model_file).build(dataset.info)
    if callable(getattr(model, "fit", None)):
        model.fit(dataset["train"], dataset["valid"], protocol.seeds[0])

    class NoFit:  # the harness must not refit: it only evaluates
        name = "prefitted"

        def predict(self, batch, mask):
            return model.predict(batch, mask)

    FITTED["model"] = NoFit()
    split = dataset[protocol.split]
    batch_size = 64
    inputs = []
    for seed in protocol.seeds:
        obs = masking.observed(protocol, split, seed)
        for c in protocol.conditions:
            for start in range(0, len(split), batch_size):
                inputs.append(masking.corrupt(split, obs[c.name], slice(start, start + batch_size), protocol.reveal_mask))

    with tempfile.TemporaryDirectory() as tmp:
        sub_path = Path(tmp) / "prefitted.py"
        sub_path.write_text(PREFITTED)
        here = executors.SerialExecutor(isolate=False)  # the pre-fitted model is in this process
        executors.run(protocol, sub_path, out=Path(tmp) / "warm-up", dataset=dataset, batch_size=batch_size,
                      executor=here)
        harness, bare, harness_cpu, bare_cpu = [], [], [], []
        for i in range(repeats):  # interleaved, best of each: this VM's neighbours steal CPU at random
            t0, c0 = time.perf_counter(), time.process_time()
            for batch, mask in inputs:
                model.predict(batch, mask)
            bare.append(time.perf_counter() - t0)
            bare_cpu.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            executors.run(protocol, sub_path, out=Path(tmp) / f"out{i}", dataset=dataset, batch_size=batch_size,
                          executor=here)
            harness.append(time.perf_counter() - t0)
            harness_cpu.append(time.process_time() - c0)
    return {"bare_s": min(bare), "harness_s": min(harness), "ratio": min(harness) / min(bare),
            "cpu_ratio": min(harness_cpu) / min(bare_cpu),
            "samples": len(split) * len(protocol.conditions) * len(protocol.seeds)}


def isolation_cost(repeats: int) -> dict:
    """Best-of-`repeats` wall time of a full example run (fit + predict, 3 seeds), isolated and in-process."""
    dataset = synth.make_dataset()
    protocol = protocols.load("synth-intra")
    example = ROOT / "submissions" / "example.py"
    times = {"isolated": [], "in-process": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved
            for mode, isolate in (("isolated", True), ("in-process", False)):
                isolation.stop()
                t0 = time.perf_counter()
                executors.run(protocol, example, out=Path(tmp) / f"{mode}{i}", dataset=dataset,
                              executor=executors.SerialExecutor(isolate=isolate))
                times[mode].append(time.perf_counter() - t0)
    return {mode: min(t) for mode, t in times.items()}


def mosei_sized_split(n: int = 4659) -> Split:
    rng = np.random.default_rng(0)
    text_len = rng.integers(8, 51, n)
    mask = (np.arange(50)[None, :] < text_len[:, None]).astype(np.int64)
    return Split(
        name="test", ids=np.array([f"video{i // 7:05d}$_${i % 7}" for i in range(n)]),
        labels=np.zeros(n, np.float32), text_mask=mask, text_ids=mask * 2000,
        audio=np.zeros((n, 500, 1), np.float32), audio_lengths=rng.integers(50, 501, n),
        vision=np.zeros((n, 500, 1), np.float32), vision_lengths=rng.integers(50, 501, n),
    )


def mask_speed(repeats: int) -> dict:
    split = mosei_sized_split()
    out = {}
    for convention in ("hash", "mmsa"):
        p = protocols.parse({"name": "bench", "version": 1, "dataset": "mosei", "seeds": [1111, 1112, 1113],
                             "primary_metric": "MAE", "mask_convention": convention,
                             "missing": {"kind": "intra", "rates": [r / 10 for r in range(10)]}}, "bench")
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for seed in p.seeds:
                masking.observed(p, split, seed)
            times.append(time.perf_counter() - t0)
        out[convention] = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--isolation-repeats", type=int, default=3)
    args = ap.parse_args()
    models = {"example (bag of words, float64)": ROOT / "submissions" / "example.py",
              "transformer (MSA-baseline-sized)": ROOT / "benchmarks" / "transformer_submission.py"}
    for label, path in models.items():
        o = overhead(path, args.repeats)
        extra_ms = 1000 * (o["harness_s"] - o["bare_s"])
        print(f"harness overhead, {label}: msabench run {o['harness_s']:.3f} s / bare predict {o['bare_s']:.3f} s "
              f"= {o['ratio']:.3f} (target <= 1.10; CPU-time ratio {o['cpu_ratio']:.3f}); "
              f"{extra_ms:.0f} ms over {o['samples']} predictions")
    m = mask_speed(args.repeats)
    for convention, seconds in m.items():
        print(f"masks, MOSEI-sized test split (4659 x 50/500/500, 10 rates, 3 seeds), {convention}: "
              f"{seconds:.3f} s (target <= 1 s)")
    c = isolation_cost(args.isolation_repeats)
    print(f"isolation, example on synth-intra (3 seeds, fit + predict): jobs in a worker process {c['isolated']:.2f} s "
          f"/ in-process {c['in-process']:.2f} s = {c['isolated'] / c['in-process']:.3f} "
          f"(+{c['isolated'] - c['in-process']:.2f} s per command: a cold worker against a warm driver)")


if __name__ == "__main__":
    main()
