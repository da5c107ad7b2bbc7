"""Calibration of `msabench compare` and the leaderboard's verdicts: false-positive rates under a true null, and power.

Part 1 (default): a simulation through the real `stats.paired_bootstrap`, `variance` and
`verdicts.judge` (benchmarks/calibration_sim.py, whose docstring describes the generator, its
calibration to the committed leaderboard runs' variance components, and the sections):
(a) size of the two-model test at k = 2, 3, 5, 10 seeds, item effects shared / model-specific,
Non0_acc_2 and MAE; (b) the board pool: pooled pairwise size on 8-model boards (overall and
for the pair with the largest retraining variances) and the board's family-wise error;
(c) power at +1, +2.5, +4 Non0_acc_2 points against the oracle z test; (d) family-wise error
of the best-set verdicts on complete-null boards of 3-15 models, against "vs observed #1 with
Holm"; (e) the MDE the verdicts report on a 15-model synth-intra-like board. 200 item
resamples per test are enough (the item term is estimated to within ~10% and is a minor
part of the variance; see calibration_sim). About 10 minutes with 2 workers on 2 idle cores
(about 20 when the cores are shared) at the default --reps 1000 (1000 null replicates per size cell; 300 boards in (b), 500 replicates
per power cell, 1000 boards per m in (d), 200 boards in (e): all scale with --reps).

Part 2 (`--harness`): the harness-level check. Null: the same method (benchmarks/null_model.py, bagged ridge) retrained on other data
draws, written as separate submission files and run through the real harness on
synth-intra (686 test items, MOSI's test size; 10 rates x 3 seeds, identical masks).
Disjoint pairs of replicas are compared; under the null, p < 0.05 must happen in at
most 5% of pairs, up to Monte-Carlo error. The same pairs also show what the item-only
bootstrap (models treated as fixed, no seed term) would have said.

Power: the second model of each pair gets a planted Non0 Acc-2 gain of 2.5 points:
in every (seed, condition), its wrong predictions on the first round(0.025 * n) items of
a per-pair random item order are flipped to the right sign, so the gain is exactly
2.5 points per stratum and lands on the same items in every stratum. For reference,
the same gain planted on the first model itself (no retraining noise between the two).

Usage: python benchmarks/calibration.py [--reps 1000] [--resamples 200] [--workers 2] [--match-estimates]
                                       [--sections abcde]
       python benchmarks/calibration.py --harness [--pairs 100] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from dataclasses import replace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = ["Non0_acc_2", "MAE"]


def replicas(count: int, folder: Path) -> list[Path]:
    template = (ROOT / "benchmarks" / "null_model.py").read_text()
    paths = []
    for k in range(count):
        path = folder / f"null_{k}.py"
        path.write_text(template.replace("REPLICA = 0", f"REPLICA = {k}", 1))
        paths.append(path)
    return paths


def plant(paired, gain: float, rng: np.random.Generator):
    """Model B made `gain` Non0 Acc-2 better on the same items in every stratum."""
    b = paired.b.copy()
    y = paired.labels
    nonzero = np.flatnonzero(y[0] != 0)
    order = rng.permutation(nonzero)
    m = int(round(gain * nonzero.size))
    for s in range(b.shape[0]):
        wrong = order[(b[s, order] > 0) != (y[s, order] > 0)][:m]
        b[s, wrong] = np.where(y[s, wrong] > 0, np.abs(b[s, wrong]) + 1e-3, -np.abs(b[s, wrong]) - 1e-3)
    return replace(paired, b=b)


def rate(hits: list[bool]) -> tuple[float, float]:
    n = len(hits)
    p = sum(hits) / n
    return p, math.sqrt(max(p * (1 - p), 0.05 * 0.95) / n)


# ---- part 2: the harness-level check -------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", action="store_true", help="the harness-level check instead of the simulation")
    ap.add_argument("--reps", type=int, default=1000,
                    help="null replicates per two-model size cell; the other sections scale with it")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--match-estimates", action="store_true",
                    help="simulation: match the leaderboard's k=3 estimates (sample seed SD, estimated share) "
                         "rather than taking them as true values")
    ap.add_argument("--sections", default="abcde", help="simulation: the sections to run (default all: abcde)")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=None, help="default: 200 (simulation), 2000 (harness)")
    ap.add_argument("--gain", type=float, default=0.025)
    args = ap.parse_args()
    if not args.sections or set(args.sections) - set("abcde"):
        ap.error(f"--sections {args.sections!r}: letters from 'abcde' (the simulation's sections)")
    if not args.harness:
        import calibration_sim

        calibration_sim.run(args.reps, args.resamples or 200, args.workers, args.match_estimates, args.sections)
        return
    args.resamples = args.resamples or 2000

    from msabench import compare, masking, protocols, runner, submission
    from msabench.data import synth

    dataset = synth.make_dataset()
    protocol = protocols.load("synth-intra")
    split = dataset[protocol.split]
    masks = {}
    for s in protocol.seeds:
        obs = masking.observed(protocol, split, s)
        masks[s] = {protocol.name: (obs, masking.fingerprint(protocol, split, s, obs))}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        units = []
        for path in replicas(2 * args.pairs, Path(tmp)):
            sub = submission.load(path)
            units.append([runner.run_job(sub, dataset, [protocol], s, 256, masks[s])[0] for s in protocol.seeds])
    t_run = time.perf_counter() - t0

    t1 = time.perf_counter()
    null = {m: [] for m in METRICS}
    null_items = {m: [] for m in METRICS}
    power, gains, power_same = [], [], []
    rng = np.random.default_rng(2025)
    for i in range(args.pairs):
        paired = compare.pair_units(units[2 * i], units[2 * i + 1])
        report = compare.compare(paired, n_resamples=args.resamples, seed=i, metric_names=METRICS)
        for m in METRICS:
            null[m].append(report.row(m).result.p < 0.05)
            null_items[m].append(report.row(m).result.p_items < 0.05)
        planted = plant(paired, args.gain, rng)
        row = compare.compare(planted, n_resamples=args.resamples, seed=i, metric_names=["Non0_acc_2"]).rows[0]
        gains.append(-row.result.diff)
        power.append(row.result.p < 0.05 and row.result.better == "b")
        same = plant(replace(paired, b=paired.a.copy(), model_b=paired.model_a + "+gain"), args.gain, rng)
        row = compare.compare(same, n_resamples=args.resamples, seed=i, metric_names=["Non0_acc_2"]).rows[0]
        power_same.append(row.result.p < 0.05 and row.result.better == "b")
    t_stats = time.perf_counter() - t1

    print(f"calibration of msabench compare on synth-intra: {args.pairs} disjoint null pairs of a model retrained on "
          f"other data draws ({2 * args.pairs} replicas x {len(protocol.seeds)} seeds; 686 items x 10 rates); "
          f"{args.resamples} resamples; alpha 0.05")
    for m in METRICS:
        fpr, se = rate(null[m])
        fpr_items, se_items = rate(null_items[m])
        verdict = "ok" if fpr <= 0.05 + 2 * se else "TOO HIGH"
        print(f"  false-positive rate, {m:<10}: {fpr:.3f} (Monte-Carlo SE {se:.3f}; target <= 0.05 + 2 SE: {verdict}); "
              f"item-only bootstrap without the seed term: {fpr_items:.3f}")
    pw, se = rate(power)
    print(f"  power for a planted +{100 * args.gain:.1f}-point Non0_acc_2 gain (measured gain {100 * np.mean(gains):.2f} "
          f"points): {pw:.3f} (Monte-Carlo SE {se:.3f})")
    pw, se = rate(power_same)
    print(f"  power for the same gain planted on the first model itself (no retraining noise between the two): "
          f"{pw:.3f} (Monte-Carlo SE {se:.3f})")
    print(f"  time: harness runs {t_run:.0f} s, comparisons {t_stats:.0f} s")


if __name__ == "__main__":
    main()
