"""How much milder token drops are when a model reads token states computed from the clean transcript.

Real CMU-MOSI utterances, mosi-utt-intra's masks (each WordPiece token becomes [UNK] with probability r).
Two ways to give a model pretrained text, with the same frozen encoder (the packaged MiniLM):
- re-encoded: the model encodes the corrupted ids itself (`text_encoder=minilm`), so a dropped word
  is gone from every state, as in LNLN's protocol where BERT reads the ids with [UNK];
- clean states: MiniLM states of the clean transcript (`msabench data embed`, variant `states`) with
  the dropped positions zeroed (`text_input=clean_features`), as every model reading MMSA's `text`
  gets: the kept tokens' states still carry the dropped words.
Each trains with the augmentation it is tested with, so at r = 0 the two differ by their training
only. Printed per r: the primary metric, mean over seeds, under each, and their difference (clean -
re-encoded) with its spread over seeds.

Usage: python benchmarks/text_context.py [--models late-fusion,text-only] [--data FILE] [--out DIR]
(about 25 minutes on 2 cores for both models and 3 seeds; finished units are re-used).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msabench import executors, protocols  # noqa: E402
from msabench.data import embed, load  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "mosi-utterance.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="late-fusion,text-only")
    ap.add_argument("--data", default=str(REAL), help="the utterance table (mosi-utterance.npz)")
    ap.add_argument("--out", default=str(ROOT / "results" / "text-context"))
    ap.add_argument("--cpus-per-job", type=int, default=1)
    args = ap.parse_args()
    out = Path(args.out)
    states_file = out / "mosi-utterance-states.npz"
    if not states_file.exists():
        out.mkdir(parents=True, exist_ok=True)
        embed.embed(args.data, states_file)
    reencoded = protocols.load("mosi-utt-intra")
    clean = dataclasses.replace(reencoded, name="mosi-utt-intra-clean-states", variant="states",
                                description="mosi-utt-intra's drops on MiniLM states of the clean transcript")
    metric = reencoded.primary_metric
    executor = executors.SerialExecutor(cpus_per_job=args.cpus_per_job)
    runs = {"tokens": load("mosi-utt", "tokens", data=args.data), "states": load("mosi-utt", "states", data=states_file)}
    for model in args.models.split(","):
        per = {}
        for p, spec, data in ((reencoded, f"{model}:text_encoder=minilm", runs["tokens"]),
                              (clean, f"{model}:text_input=clean_features", runs["states"])):
            report = executors.run(p, spec, out=out / "runs", dataset=data, executor=executor)
            per[p.name] = {u.seed: u.metrics["conditions"] for u in report.units}
        a, b = per[reencoded.name], per[clean.name]
        seeds = sorted(set(a) & set(b))
        print(f"\n{model} on mosi-utt-intra's drops ({metric}, {len(seeds)} seeds {seeds}; frozen MiniLM both ways)\n")
        print(f"{'condition':>10}  {'re-encoded':>11}  {'clean states':>13}  {'clean - re-encoded':>19}  {'sd':>7}")
        for cond in (c.name for c in reencoded.conditions):
            x = [a[s][cond][metric] for s in seeds]
            y = [b[s][cond][metric] for s in seeds]
            d = [v - u for u, v in zip(x, y)]
            sd = statistics.stdev(d) if len(d) > 1 else float("nan")
            print(f"{cond:>10}  {statistics.mean(x):>11.4f}  {statistics.mean(y):>13.4f}  {statistics.mean(d):>+19.4f}"
                  f"  {sd:>7.4f}")


if __name__ == "__main__":
    main()
