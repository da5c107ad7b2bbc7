"""Calibration of `msabench compare`: false-positive rate under a true null, and power.

Part 1 (default): a simulation through the real `stats.paired_bootstrap`, >= 1,000 null
replicates per setting. MOSI-sized test sets (synth-mosi's 686 test labels); each model's
prediction for item i at seed s is label + shared item error + model-specific item error
(independent between the two models: a nonzero item effect whose population mean is 0)
+ seed shift + seed x item noise. Settings cross k = 2, 3, 5, 10 seeds with three
variance ratios (all retraining noise, balanced, all item noise) and two robustness cases
at k = 3 (unequal retraining noise: model B deterministic; seeds shared by the two
models: the same seed shifts both). Each setting reports the false-positive rate of the
test `compare` uses and of the previous one (item bootstrap + var(d_s)/k, Welch-
Satterthwaite df), with the exact binomial pass rule: a rate passes when 1000 draws at
exactly alpha would give as many rejections with probability > 1% (one-sided). Power is
measured on a third as many replicates with model B's errors shrunk by 10% (the mean
difference is printed).

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

Usage: python benchmarks/calibration.py [--reps 1000] [--resamples 200] [--workers 2]
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


# ---- part 1: simulation through stats.paired_bootstrap ------------------------------------------

RATIOS = {  # name -> (seed effect sd, model-specific item sd); seed x item sd 0.1, shared item sd 0.8 throughout
    "retraining only": (0.06, 0.0),
    "balanced": (0.03, 0.3),
    "items only": (0.0, 0.4),
}
INTER_SD = 0.1
SIM_METRICS = ("Non0_acc_2", "MAE")


def _draw(rng, y, k, seed_sd, item_sd, shrink=0.0, deterministic_b=False, shared_seeds=False):
    """Predictions [k, n] of two models whose errors have the given structure.

    A seed scales a model's errors by exp(N(0, seed_sd)) and shifts them by N(0, seed_sd):
    seeds move MAE and the accuracies alike (a shift alone barely moves MAE).
    """
    g = rng.normal(0.0, 0.8, y.size)
    shared = rng.normal(0.0, seed_sd, (2, k, 1))
    out = []
    for model in range(2):
        scale_, shift = shared if shared_seeds else rng.normal(0.0, seed_sd, (2, k, 1))
        item = rng.normal(0.0, item_sd, y.size)
        inter = rng.normal(0.0, INTER_SD, (k, y.size))
        if model == 1 and deterministic_b:  # the same predictions whatever the seed, equally good on average
            scale_, shift, inter = 0.0, 0.0, rng.normal(0.0, INTER_SD, y.size)
        err = np.broadcast_to((g + item + inter) * np.exp(scale_) + shift, (k, y.size))
        out.append(y + err * (1.0 - shrink if model == 1 else 1.0))
    return out


def _old_p(a, b, y, k, n_resamples, seed) -> dict[str, float]:
    """The previous test: se^2 = boot var of the mean difference + var(d_s)/k, Welch-Satterthwaite df."""
    from scipy import stats as sps

    from msabench import stats

    counts = stats.resample_counts(y.shape[1], n_resamples, seed)
    pa, pb = stats.stratum_metrics(a, y, "mosi"), stats.stratum_metrics(b, y, "mosi")
    ba, bb = stats.stratum_metrics(a, y, "mosi", counts), stats.stratum_metrics(b, y, "mosi", counts)
    out = {}
    for m in SIM_METRICS:
        d = pa[m] - pb[m]
        boot = (ba[m] - bb[m]).mean(axis=1)
        boot = boot[np.isfinite(boot)]
        se_items2, se_seeds2 = np.var(boot, ddof=1), np.var(d, ddof=1) / k
        se = math.sqrt(se_items2 + se_seeds2)
        df = se**4 * (k - 1) / se_seeds2**2 if se_seeds2 > 0 else math.inf
        out[m] = float(2 * sps.t.sf(abs(d.mean()) / se, df))
    return out


def _setting(job):
    name, k, ratio, reps, n_resamples, kw = job
    from msabench import stats
    from msabench.data import synth

    y1 = synth.make_dataset()["test"].labels.astype(np.float64)
    y = np.tile(y1, (k, 1))
    rng = np.random.default_rng([k, len(name), reps, sum(map(ord, name))])
    seed_sd, item_sd = RATIOS[ratio]
    out = {f"{what}_{m}": 0 for what in ("null", "old", "power", "old_power") for m in SIM_METRICS}
    gains = {m: [] for m in SIM_METRICS}
    for r in range(reps):
        for shrink, tag in ((0.0, ""), (0.1, "power")) if r < reps // 3 else ((0.0, ""),):
            a, b = _draw(rng, y1, k, seed_sd, item_sd, shrink, **kw)
            res = stats.paired_bootstrap(a, b, y, np.arange(k), "mosi", n_resamples=n_resamples, seed=r)
            old = _old_p(a, b, y, k, n_resamples, r)
            for m in SIM_METRICS:
                key = tag or "null"
                out[f"{key}_{m}"] += res[m].p < 0.05
                out[f"old_{key}_{m}" if tag else f"old_{m}"] += old[m] < 0.05
                if tag:  # B's gain in the metric's own direction
                    gains[m].append(res[m].diff if m == "MAE" else -res[m].diff)
    return name, k, ratio, reps, out, {m: float(np.mean(g)) for m, g in gains.items()}


def _bound(reps: int, alpha: float = 0.05, level: float = 0.01) -> int:
    """Most rejections out of `reps` a test of size alpha shows with probability > `level` (exact binomial)."""
    from scipy import stats as sps

    x = int(sps.binom.isf(level, reps, alpha))
    while sps.binom.sf(x, reps, alpha) > level:  # P(X > x)
        x += 1
    return x


def simulate(reps: int, n_resamples: int, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(f"k={k}, {ratio}", k, ratio, reps, n_resamples, {}) for k in (2, 3, 5, 10) for ratio in RATIOS]
    jobs += [("k=3, balanced, B deterministic (unequal retraining noise)", 3, "balanced", reps, n_resamples,
              {"deterministic_b": True}),
             ("k=3, balanced, seed shifts shared by A and B", 3, "balanced", reps, n_resamples, {"shared_seeds": True})]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_setting, jobs))
    bound = _bound(reps)
    print(f"calibration of the paired test (stats.paired_bootstrap): {reps} null replicates per setting, 686 items, "
          f"{n_resamples} item resamples, alpha 0.05; pass: at most {bound} rejections (exact binomial, 1% one-sided)")
    print("false-positive rate (FPR) and power (B's errors shrunk 10%) of the test compare uses; the previous test "
          "(item bootstrap + var(d_s)/k, Welch-Satterthwaite df) after the slash")
    header = (f"{'setting':<58} {'metric':<11} {'FPR now / before':>17} {'pass':>5} {'power now / before':>19}"
              f" {'at gain':>8}")
    print(header)
    print("-" * len(header))
    for name, _k, _ratio, n, out, gains in done:
        for m in SIM_METRICS:
            fpr, old = out[f"null_{m}"] / n, out[f"old_{m}"] / n
            pw, old_pw = out[f"power_{m}"] / (n // 3), out[f"old_power_{m}"] / (n // 3)
            ok = "ok" if out[f"null_{m}"] <= bound else "FAIL"
            print(f"{name:<58} {m:<11} {fpr:>8.3f} / {old:<6.3f} {ok:>5} {pw:>9.3f} / {old_pw:<6.3f}"
                  f" {gains[m]:>8.4f}")
    print(f"({time.perf_counter() - t0:.0f} s, {workers} worker(s))")


# ---- part 2: the harness-level check -------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", action="store_true", help="the harness-level check instead of the simulation")
    ap.add_argument("--reps", type=int, default=1000, help="null replicates per simulated setting")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=None, help="default: 200 (simulation), 2000 (harness)")
    ap.add_argument("--gain", type=float, default=0.025)
    args = ap.parse_args()
    if not args.harness:
        simulate(args.reps, args.resamples or 200, args.workers)
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
