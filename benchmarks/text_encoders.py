"""What a pretrained text encoder costs: text-only with the packaged MiniLM, frozen against fine-tuned.

On the real CMU-MOSI utterance table when it is present (WordPiece tokens, 1220 training
utterances), else on synth-mosi: the time of a short fit (`--epochs`, one seed, augmentation on,
as the default recipe trains) and of predicting two rates of the intra protocol, both modes in
one process, so that their ratio holds on a busy machine. Frozen states are cached per distinct
input; the cache is cleared before each measurement.

Usage: python benchmarks/text_encoders.py [--epochs N] [--data mosi-utterance.npz]
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

from msabench import protocols, runner, submission  # noqa: E402
from msabench import torch_baseline as tb  # noqa: E402
from msabench.data import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mosi-utterance.npz"))
    args = ap.parse_args()
    os.environ["MSABENCH_CACHE"] = tempfile.mkdtemp(prefix="msabench-bench-")  # train, never load a checkpoint
    real = Path(args.data).is_file()
    data = load("mosi-utt", "tokens", data=args.data) if real else load("synth-mosi", "aligned_50")
    p = protocols.parse({"name": "bench", "version": 1, "dataset": data.name, "variant": data.variant,
                         "seeds": [1111], "primary_metric": "Non0_acc_2",
                         "missing": {"kind": "intra", "rates": [0.0, 0.5]}}, "bench")
    where = f"{'real CMU-MOSI utterances' if real else 'synth-mosi'} ({len(data['train'])} train, {len(data['test'])} test)"
    times = {}
    for mode in ("frozen", "finetune"):
        tb._STATES.clear()
        tb._STATE_BYTES[0] = 0
        spec = f"text-only:text_encoder=minilm,text_train={mode},epochs={args.epochs},patience={args.epochs}"
        t0 = time.perf_counter()
        unit = runner.run_unit(submission.load(spec), data, p, 1111)
        total = time.perf_counter() - t0
        fit = unit.manifest["fit_seconds"]
        times[mode] = fit
        print(f"text-only + MiniLM {mode}, {where}: fit {fit:.1f} s ({args.epochs} epochs), predict 2 rates "
              f"{unit.manifest['predict_seconds']:.1f} s, total {total:.1f} s; "
              f"Non0_acc_2 r=0 {unit.metrics['conditions']['r=0']['Non0_acc_2']:.4f}")
    print(f"fine-tuning fits {times['finetune'] / times['frozen']:.2f}x as long as frozen")


if __name__ == "__main__":
    main()
