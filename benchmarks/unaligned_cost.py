"""What one training batch costs each reference method at MOSI's unaligned shapes, on one CPU thread.

synth-mosi `unaligned_50` (text 50 tokens, audio 375 x 5, vision 500 x 20), a batch of 64, the default
options: forward, the model's training loss, backward and an AdamW step; the faster of two timed
batches after a warm-up one, and what an epoch and 200 epochs (LNLN's and ALMT's authors' recipe)
would take at that rate. Says which runs of synth-unaligned-intra fit a CPU (about 2 minutes).

Usage: python benchmarks/unaligned_cost.py [--methods lnln almt cenet tetfn]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from msabench import masking, submission, training  # noqa: E402
from msabench.data import synth  # noqa: E402

BATCH = 64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["lnln", "almt", "cenet", "tetfn"])
    args = ap.parse_args()
    ds = synth.make_dataset(variant="unaligned_50")
    train = ds["train"]
    torch.set_num_threads(1)
    rows = np.arange(BATCH)
    batch, _ = masking.corrupt(train, training.complete(train), rows, reveal=False)
    x = training.tensors(batch)
    y = torch.from_numpy(train.labels[rows].astype(np.float32))
    batches = -(-len(train) // BATCH)
    print(f"synth-mosi unaligned_50 (audio {ds.info.audio_len} x {ds.info.audio_dim}, vision {ds.info.vision_len} x "
          f"{ds.info.vision_dim}), {len(train)} training samples, batch {BATCH}, 1 CPU thread")
    for name in args.methods:
        net = submission.load(name).build(ds.info).make_net().train()
        opt = torch.optim.AdamW(net.parameters())
        times = []
        for _ in range(3):
            start = time.perf_counter()
            loss, _ = net.training_loss(x, x, y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - start)
        per = min(times[1:])
        print(f"{name}: {per:.2f} s a batch -> {per * batches / 60:.1f} min an epoch, "
              f"{per * batches * 200 / 3600:.1f} h for 200 epochs")


if __name__ == "__main__":
    main()
