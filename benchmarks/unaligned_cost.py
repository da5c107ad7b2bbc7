"""What training costs each reference method at MOSI's unaligned shapes, on one CPU thread.

synth-mosi `unaligned_50` (text 50 tokens, audio 375 x 5, vision 500 x 20), the default options: one
epoch of `fit` (the harness's own training step: masking, forward, loss, backward, optimiser) on the
first 128 training samples, two batches of 64, scaled to an epoch of the whole split and to 200 epochs
(LNLN's and ALMT's authors' recipe), as benchmarks/gpu.py scales its CPU epochs. Says which runs of
synth-unaligned-intra fit a CPU (about 3 minutes).

Usage: python benchmarks/unaligned_cost.py [--methods lnln almt cenet tetfn]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msabench import devices, submission  # noqa: E402
from msabench.data import synth  # noqa: E402

SAMPLES = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["lnln", "almt", "cenet", "tetfn"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="msabench-bench-") as cache:
        os.environ["MSABENCH_CACHE"] = cache  # train, never load a checkpoint (and leave none behind)
        measure(args.methods)
    print(f"CPU: {devices.cpu_name()}")  # epochs differ by CPU kind (AVX2 against AVX512 about 2x for LNLN)


def measure(methods: list[str]) -> None:
    ds = synth.make_dataset(variant="unaligned_50")
    n = len(ds["train"])
    small, valid = ds["train"].select(slice(0, SAMPLES)), ds["valid"].select(slice(0, 16))
    print(f"synth-mosi unaligned_50 (audio {ds.info.audio_len} x {ds.info.audio_dim}, vision {ds.info.vision_len} x "
          f"{ds.info.vision_dim}), batch 64, 1 CPU thread fp32; {SAMPLES} samples trained, scaled to {n}")
    for name in methods:
        model = submission.load(f"{name}:epochs=1,device=cpu,precision=fp32,threads=1").build(ds.info)
        model.log = lambda msg: None
        model.fit(small, valid, 1111)
        epoch = model.history[0]["train_s"] / SAMPLES * n
        print(f"{name}: {epoch / 60:.1f} min an epoch, {epoch * 200 / 3600:.1f} h for 200 epochs")


if __name__ == "__main__":
    main()
