"""Harness benchmarks: prints the figures the README reports (ratios measured in one process).

1. Harness overhead: `msabench run` of synth-intra (3 seeds x 10 rates, predictions
   written) with an already fitted example model, divided by the time of the same
   model's bare `predict` calls over the same, pre-built inputs. Target <= 1.10.
2. Mask generation for a MOSEI-sized test split (4659 samples; 50/500/500 positions;
   10 rates; 3 seeds), both conventions. Target <= 1 s.

Usage: python benchmarks/harness.py [--repeats N]
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

from msabench import masking, protocols, runner, submission  # noqa: E402
from msabench.data import synth  # noqa: E402
from msabench.data.core import Split  # noqa: E402

FITTED = {}  # the pre-fitted model handed to the harness by the submission below

PREFITTED = '''
import sys

def build(info):
    return sys.modules["__bench__"].FITTED["model"]
'''


def overhead(repeats: int) -> dict:
    sys.modules["__bench__"] = sys.modules[__name__]
    dataset = synth.make_dataset()
    protocol = protocols.load("synth-intra")
    example = submission.load(ROOT / "submissions" / "example.py")
    model = example.build(dataset.info)
    model.fit(dataset["train"], dataset["valid"], protocol.seeds[0])

    class NoFit:  # the harness must not refit: it only evaluates
        def __init__(self, inner):
            self.inner, self.name = inner, "example-fitted"

        def predict(self, batch, mask):
            return self.inner.predict(batch, mask)

    FITTED["model"] = NoFit(model)
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
        harness, bare = [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            for batch, mask in inputs:
                model.predict(batch, mask)
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            runner.run(protocol, sub_path, out=Path(tmp) / f"out{i}", dataset=dataset, batch_size=batch_size)
            harness.append(time.perf_counter() - t0)
    return {"bare_s": min(bare), "harness_s": min(harness), "ratio": min(harness) / min(bare),
            "samples": len(split) * len(protocol.conditions) * len(protocol.seeds)}


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
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    o = overhead(args.repeats)
    print(f"harness overhead (synth-intra, {o['samples']} predictions, best of {args.repeats}): "
          f"msabench run {o['harness_s']:.3f} s / bare predict {o['bare_s']:.3f} s = {o['ratio']:.3f} (target <= 1.10)")
    m = mask_speed(args.repeats)
    for convention, seconds in m.items():
        print(f"masks, MOSEI-sized test split (4659 x 50/500/500, 10 rates, 3 seeds), {convention}: "
              f"{seconds:.3f} s (target <= 1 s)")


if __name__ == "__main__":
    main()
