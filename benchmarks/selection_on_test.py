"""How much of a published number is checkpoint selection on the TEST split (LNLN's protocol flaw).

LNLN's code keeps, for each metric, the epoch where that metric was best on the test split at
r = 0.5, and reports each metric from its own checkpoint. msabench reproduces it on purpose with
`selection=test-per-metric,selection_metric=M` (msabench.training.TestSelection): the same training
run as the default, watched on test, so the two differ only in which epoch's weights are kept. One
training per seed serves every metric (each metric's checkpoint is cached by the first run).

For each metric M this prints, over the protocol's seeds, M (mean over conditions) of the
valid-selected model and of the model selected on test for M, their paired difference with its 95%
interval and p (`msabench compare`'s paired test: item resamples plus the retraining variance of the
seed-level differences). The test-selected column read down is the row LNLN's table would print: every
metric from its own checkpoint. Where the protocol has r = 0.5, the difference there (the condition the
selection looked at, on the same test items) is shown too.

Usage: python benchmarks/selection_on_test.py [--protocol P] [--model SPEC] [--data FILE] [--out DIR]
Defaults: synth-intra with text-only (scratch). For the real utterances:
  python benchmarks/selection_on_test.py --protocol mosi-utt-intra --model text-only:text_encoder=minilm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msabench import compare, executors, metrics, protocols  # noqa: E402
from msabench.data import load  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "mosi-utterance.npz"
DEFAULT_METRICS = {"mosi": ["Non0_acc_2", "Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr"],
                   "sims": ["Mult_acc_2", "Mult_acc_3", "F1_score", "MAE", "Corr"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="synth-intra")
    ap.add_argument("--model", default="text-only", help="a bundled torch model, with options if any")
    ap.add_argument("--metrics", nargs="+", help="metrics to select on (default: the usual table's)")
    ap.add_argument("--data", help="the data file (default: the real utterance table for mosi-utt protocols)")
    ap.add_argument("--out", default=str(ROOT / "results" / "selection-on-test"))
    ap.add_argument("--cpus-per-job", type=int, default=1)
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args()
    protocol = protocols.load(args.protocol)
    kind = protocol.metric_kind
    names = args.metrics or DEFAULT_METRICS[kind]
    data = args.data or (str(REAL) if protocol.dataset == "mosi-utt" else None)
    dataset = load(protocol.dataset, protocol.variant, data=data)
    executor = executors.SerialExecutor(cpus_per_job=args.cpus_per_job)
    sep = "," if ":" in args.model else ":"
    honest = executors.run(protocol, args.model, out=args.out, dataset=dataset, executor=executor)
    chosen = {m: executors.run(protocol, f"{args.model}{sep}selection=test-per-metric,selection_metric={m}",
                               out=args.out, dataset=dataset, executor=executor) for m in names}
    seeds = [u.seed for u in honest.units]
    print(f"{honest.model} on {protocol.name}, seeds {', '.join(map(str, seeds))}: each metric's mean over "
          f"conditions, checkpoint selected on validation MAE (msabench) vs on that metric on TEST at r = 0.5 (LNLN)\n")
    at = "r=0.5" if "r=0.5" in [c.name for c in protocol.conditions] else None  # where LNLN selects
    header = (f"{'metric':<14} {'valid-selected':>16} {'test-selected':>16} {'difference [95% CI]':>30} {'p':>8}"
              + (f" {'difference at ' + at:>20} {'p':>8}" if at else ""))
    print(header + "\n" + "-" * len(header))
    for m in names:
        paired = compare.pair(args.out, protocol.name, chosen[m].model, honest.model)
        r = compare.compare(paired, n_resamples=args.resamples, metric_names=[m]).rows[0].result  # test - valid
        va = [u.metrics["aggregate"]["mean"][m] for u in honest.units]
        te = [u.metrics["aggregate"]["mean"][m] for u in chosen[m].units]
        line = (f"{m:<14} {fmt(va):>16} {fmt(te):>16} {r.diff:>+12.4f} [{r.ci_diff[0]:+.4f}, {r.ci_diff[1]:+.4f}] "
                f"{compare.format_p(r.p):>8}")
        if at:
            r5 = compare.compare(paired.only([at]), n_resamples=args.resamples, metric_names=[m]).rows[0].result
            line += f" {r5.diff:>+20.4f} {compare.format_p(r5.p):>8}"
        print(line)
    better = [m for m in names if m not in metrics.LOWER_IS_BETTER]
    print(f"\n(difference = test-selected minus valid-selected; positive is 'better' for {', '.join(better)}, "
          "negative for MAE.)")


def fmt(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else float("nan")
    return f"{mean:.4f} ± {sd:.4f}"


if __name__ == "__main__":
    main()
