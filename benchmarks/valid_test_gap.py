"""Does validation tell anything about test on the real utterance data? The validation/test gap of
every model of a results folder, clean inputs, per seed.

The bc-LSTM audio and visual vectors (and its text vector) of mosi-utt were learned with labels on
the whole training split, validation videos included, so a model that leans on them looks better on
validation than it is on test. For each protocol and model this evaluates the stored checkpoints
(the same trained models as the results; training is cached, never repeated here unless the cache
is empty) on the clean validation split, and prints next to it the clean test score from the results
folder: full inputs (TAV) for inter protocols, r = 0 for intra ones.

Usage: python benchmarks/valid_test_gap.py --results leaderboard/runs
           [--protocol mosi-utt-inter-tokens mosi-utt-inter] [--data mosi-utterance.npz]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msabench import executors, protocols, results  # noqa: E402
from msabench.data import load  # noqa: E402


def clean(p: protocols.Protocol) -> protocols.Condition:
    return next(c for c in p.conditions if (c.available == "TAV" if p.kind == "inter" else not any(c.rates)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="the results folder whose models are measured")
    ap.add_argument("--protocol", nargs="+", default=["mosi-utt-inter-tokens", "mosi-utt-inter"])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mosi-utterance.npz"))
    ap.add_argument("--metric", default="Non0_acc_2")
    ap.add_argument("--cpus-per-job", type=int, default=1, help="the thread count the results were trained with")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="msabench-valid-"))
    for name in args.protocol:
        p = protocols.load(name)
        cond = clean(p)
        valid = dataclasses.replace(p, name=f"{p.name}-valid", split="valid", conditions=(cond,))
        dataset = load(p.dataset, p.variant, data=args.data)
        print(f"\n{p.name}: clean inputs ({cond.name}), {args.metric} and MAE, mean ± std over seeds; "
              f"valid {len(dataset['valid'])} utterances, test {len(dataset['test'])}")
        print(f"{'model':42} {'valid ' + args.metric:>18} {'test ' + args.metric:>18} {'gap':>8} "
              f"{'valid MAE':>16} {'test MAE':>16}")
        folder = Path(args.results) / p.name
        for model_dir in sorted(d for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []:
            units = [results.read_unit(s, (args.data,)) for s in results.find_units(args.results, p.name, model_dir.name)]
            units = [u for u in units if u.manifest.get("protocol_fingerprint") == p.fingerprint]
            if not units or "=False" in model_dir.name:
                continue  # ablations are left out
            spec = _spec(model_dir.name)
            # one CPU thread, as `make leaderboard` trains: the cached checkpoints are found, not retrained
            report = executors.run(valid, spec, out=out, dataset=dataset, seeds=[u.seed for u in units],
                                   executor=executors.SerialExecutor(cpus_per_job=args.cpus_per_job))
            v = {u.seed: u.metrics["conditions"][cond.name] for u in report.units}
            t = {u.seed: u.metrics["conditions"][cond.name] for u in units}
            seeds = sorted(set(v) & set(t))

            (va, vs), (ta, ts) = _ms(v, seeds, args.metric), _ms(t, seeds, args.metric)
            (vm, vms), (tm, tms) = _ms(v, seeds, "MAE"), _ms(t, seeds, "MAE")
            print(f"{model_dir.name:42} {va:>10.4f} ± {vs:.4f} {ta:>10.4f} ± {ts:.4f} {va - ta:>+8.4f} "
                  f"{vm:>8.4f} ± {vms:.4f} {tm:>8.4f} ± {tms:.4f}")


def _ms(by_seed: dict, seeds: list[int], key: str) -> tuple[float, float]:
    xs = [by_seed[s][key] for s in seeds]
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def _spec(name: str) -> str:
    """A results folder name back to the spec that made it: `prlf[text_encoder=minilm]` -> `prlf:text_encoder=minilm`."""
    if name.startswith("mmsa-"):
        name = "mmsa:" + name[len("mmsa-"):].replace("[", ",", 1).rstrip("]")
        return name
    if "[" not in name:
        return name
    base, opts = name[:-1].split("[", 1)
    return f"{base}:{opts}"


if __name__ == "__main__":
    main()
