"""compare / verify / leaderboard significance on results written by the real runner."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from msabench import (board, claims, compare, executors, leaderboard, multiplicity, protocols, resampling, results, stats,
                      submission)
from msabench.errors import MsabenchError

from conftest import ROOT, small_dataset, write_file

RIDGE = """
import numpy as np

NOISE = {noise}
ALPHA = {alpha}

class Ridge:
    name = "{name}"

    def __init__(self, info):
        pass

    def _x(self, ids, mask, audio, vision):
        words = np.stack([((ids == w) & (mask > 0)).sum(1) for w in self.words], 1) / mask.sum(1, keepdims=True)
        return np.concatenate([words, audio.mean(1), vision.mean(1)], 1)

    def fit(self, train, valid, seed):
        ids = train.text_ids[train.text_mask > 0]
        vocab, counts = np.unique(ids[ids > 102], return_counts=True)
        self.words = vocab[np.argsort(-counts, kind="stable")[:80]]
        rows = np.random.default_rng(seed).permutation(len(train))[: int(0.9 * len(train))]
        x = self._x(train.text_ids[rows], train.text_mask[rows], train.audio[rows], train.vision[rows])
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        x = (x - self.mu) / self.sd
        y = train.labels[rows].astype(float)
        self.b0 = y.mean()
        self.w = np.linalg.solve(x.T @ x + ALPHA * np.eye(x.shape[1]), x.T @ (y - self.b0))

    def predict(self, batch, mask):
        x = (self._x(batch.text_ids, batch.text_mask, batch.audio, batch.vision) - self.mu) / self.sd
        jitter = np.array([sum(i.encode()) * 7919 % 1000 for i in batch.ids.tolist()]) / 1000.0 - 0.5
        return x @ self.w + self.b0 + NOISE * 4 * jitter
"""
SEEDS = [1111, 1112, 1113]


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    data = small_dataset(sizes=(300, 60, 200))
    p = protocols.load("synth-intra")
    models = {"strong": (0.0, 1.0), "weak": (3.0, 1.0), "strong2": (0.0, 1.5)}
    for name, (noise, alpha) in models.items():
        path = write_file(tmp / f"{name}.py", RIDGE.format(name=name, noise=noise, alpha=alpha))
        executors.run(p, path, out=tmp / "results", dataset=data, seeds=SEEDS)
    executors.run(p, "mean", out=tmp / "results", dataset=data, seeds=SEEDS)
    executors.run(protocols.load("synth-inter"), "mean", out=tmp / "results", dataset=data, seeds=SEEDS[:1])
    return tmp / "results"


def msabench(*args):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msabench: error:"), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def stored(res, model, metric, seeds=SEEDS):
    """The seed-level aggregates straight from metrics.json."""
    out = []
    for s in seeds:
        m = json.loads((res / "synth-intra" / model / f"seed-{s}" / "metrics.json").read_text())
        out.append(m["aggregate"]["mean"][metric])
    return np.array(out, dtype=float)


def test_pair_aligns_stored_predictions(res):
    paired = compare.pair(res, "synth-intra", "strong", "weak")
    assert paired.a.shape == (30, 200) and paired.seed_list == SEEDS
    for metric in ("Non0_acc_2", "MAE"):
        per = resampling.stratum_metrics(paired.a, paired.labels, "mosi")[metric]
        assert np.allclose(per.reshape(3, 10).mean(1), stored(res, "strong", metric), atol=1e-12)


def test_compare_report_matches_independent_computations(res):
    paired = compare.pair(res, "synth-intra", "strong", "weak")
    report = compare.compare(paired, n_resamples=2000)
    for metric in ("Non0_acc_2", "MAE", "Has0_F1_score"):
        row = report.row(metric)
        diff = stored(res, "strong", metric) - stored(res, "weak", metric)
        assert row.result.diff == pytest.approx(diff.mean(), abs=1e-12)
        assert row.result.seed_a[1] == pytest.approx(np.std(stored(res, "strong", metric), ddof=1), abs=1e-12)
    # Holm over every metric shown, against the definition
    p = np.array([r.result.p for r in report.rows])
    order = np.argsort(p)
    brute = np.empty_like(p)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        brute[i] = running
    assert np.allclose([r.p_holm for r in report.rows], brute)
    # McNemar on Has0 Acc-2 with items as units: wins per item over the 30 strata, then a sign test
    ok_a = (paired.a >= 0) == (paired.labels >= 0)
    ok_b = (paired.b >= 0) == (paired.labels >= 0)
    wins = ok_a.sum(0).astype(int) - ok_b.sum(0).astype(int)
    k, n = int((wins > 0).sum()), int((wins != 0).sum())
    assert report.row("Has0_acc_2").test_p == pytest.approx(sps.binomtest(k, n, 0.5).pvalue)
    assert report.row("MAE").test == "sign-flip"
    # the noisy copy is worse on MAE, decisively
    assert report.row("MAE").verdict == "strong better" and report.row("MAE").result.diff < 0


def test_compare_cli_prints_every_metric(res):
    proc = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", res, "--resamples", 500)
    assert proc.returncode == 0, proc.stderr
    for metric in ("Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr"):
        assert re.search(rf"\| {metric} +\|", proc.stdout), metric
    assert "Holm over 8 metrics" in proc.stdout and "strong better" in proc.stdout
    sub = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", res, "--resamples", 500,
                   "--conditions", "r=0", "r=0.5", "--metrics", "MAE")
    assert sub.returncode == 0 and "2 condition(s)" in sub.stdout and "Holm over 1 metrics" in sub.stdout


def _numbers(text: str, metric: str) -> list[list[float]]:
    """The numbers of each cell of `metric`'s row in a printed table."""
    row = next(x for x in text.splitlines() if x.startswith(f"| {metric} "))
    return [[float(v) for v in re.findall(r"[-+]?\d+\.\d+", c)] for c in row.strip("|").split("|")[1:]]


def test_compare_prints_accuracies_in_percent_and_mae_in_its_own_units(res):
    """Paper units in the printed table: an accuracy or F1 in percent, its Δ and interval in points (100x
    the fractions the stored results give); MAE and Corr as they are; p-values untouched."""
    paired = compare.pair(res, "synth-intra", "strong", "weak")
    report = compare.compare(paired, n_resamples=500)
    for wide in (False, True):
        text = report.table(claims.scale, wide=wide)
        assert ("accuracies and F1 in percent, their Δ and intervals in points; MAE and Corr in their own units"
                in text.splitlines()[0])
        for metric, k, digits in (("Non0_acc_2", 100, 2), ("Has0_F1_score", 100, 2), ("Mult_acc_7", 100, 2),
                                  ("MAE", 1, 4 if wide else 3), ("Corr", 1, 4 if wide else 3)):
            a, b = stored(res, "strong", metric), stored(res, "weak", metric)
            r = report.row(metric)
            cells = _numbers(text, metric)
            half = 0.5 * 10 ** -digits + 1e-9  # the printed rounding
            assert cells[0] == pytest.approx([k * a.mean(), k * np.std(a, ddof=1)], abs=half)
            assert cells[1] == pytest.approx([k * b.mean(), k * np.std(b, ddof=1)], abs=half)
            assert cells[2] == pytest.approx([k * (a - b).mean(), k * r.ci[0], k * r.ci[1]], abs=half)
            p_holm = compare.format_p(r.p_holm)
            assert re.search(rf"\| {re.escape(p_holm)} +\|", next(x for x in text.splitlines()
                                                                  if x.startswith(f"| {metric} ")))
    # the command prints the same units; the Report keeps fractions
    proc = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", res, "--resamples", 300)
    assert proc.returncode == 0, proc.stderr
    a = stored(res, "strong", "Non0_acc_2")
    assert _numbers(proc.stdout, "Non0_acc_2")[0] == pytest.approx([100 * a.mean(), 100 * np.std(a, ddof=1)],
                                                                    abs=0.005 + 1e-9)
    assert report.row("Non0_acc_2").result.seed_a[0] == pytest.approx(a.mean(), abs=1e-12)
    only_mae = compare.compare(paired, n_resamples=300, metric_names=["MAE"]).table(claims.scale)
    assert "MAE in its own units" in only_mae and "percent" not in only_mae


@pytest.mark.parametrize("args, needles", [
    (["strong", "nobody"], ["no results for model nobody on synth-intra", "models there: ", "strong"]),
    (["strong", "weak", "--metrics", "Mult_acc_3"], ["metric 'Mult_acc_3' does not exist for synth-intra"]),
    (["strong", "weak", "--seeds", "1111"], ["at least 2 seeds", "[1111]"]),
    (["strong", "weak", "--conditions", "r=2"], ["no condition 'r=2'"]),
    (["strong", "strong"], ["two different models"]),
])
def test_compare_bad_input(res, args, needles):
    one_line_error(msabench("compare", *args, "--protocol", "synth-intra", "--results", res), *needles)


def test_compare_refuses_unpaired_results(res, tmp_path):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(res, copy)
    one_line_error(msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", tmp_path / "none"),
                   "no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(msabench("compare", "a", "b", "--protocol", "synth-intra", "--results", empty),
                   "no results for protocol synth-intra")
    manifest = copy / "synth-intra" / "weak" / "seed-1112" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["masks_fingerprint"] = "0" * 64
    manifest.write_text(json.dumps(m))
    one_line_error(msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", copy),
                   "seed 1112", "different masks")
    m["dataset_fingerprint"] = "f" * 64
    manifest.write_text(json.dumps(m))
    one_line_error(msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", copy),
                   "dataset fingerprint", "not comparable")


def test_claim_grammar_and_units():
    c = claims.parse("derl > prlf on mosi-intra: Non0_acc_2 +2.47")
    assert (c.better, c.worse, c.protocol, c.metric, c.value) == ("derl", "prlf", "mosi-intra", "Non0_acc_2", 2.47)
    c = claims.parse("prlf < derl on mosi-intra: MAE +0.03")  # prlf worse: its MAE is 0.03 higher
    assert (c.better, c.worse, c.value, c.improvement) == ("derl", "prlf", -0.03, 0.03)
    assert claims.scale("Non0_acc_2") == 100 and claims.scale("MAE") == 1
    with pytest.raises(MsabenchError, match="does not parse; grammar: MODEL_A > MODEL_B on PROTOCOL"):
        claims.parse("derl beats prlf by 2 points")
    with pytest.raises(MsabenchError, match="'Mult_acc_3' does not exist for mosi-intra"):
        claims.parse("a > b on mosi-intra: Mult_acc_3 +1")
    with pytest.raises(MsabenchError, match="not an improvement"):
        claims.parse("a > b on mosi-intra: MAE +0.02")
    with pytest.raises(MsabenchError, match="unknown protocol"):
        claims.parse("a > b on nowhere: MAE -0.02")


@pytest.mark.parametrize("measured, ci, p, word", [
    (2.4, (1.0, 3.8), 0.001, "supported"),
    (0.8, (0.3, 1.3), 0.001, "significant, but smaller than claimed"),
    (6.0, (4.0, 8.0), 0.001, "significant, and larger than claimed"),
    (0.5, (-0.9, 2.9), 0.4, "not significant"),
    (0.3, (-0.9, 1.5), 0.6, "refuted (claimed value outside the CI)"),  # +2.47 lies above the whole CI
    (-1.5, (-2.5, -0.5), 0.003, "contradicted"),
])
def test_verdicts(measured, ci, p, word):
    c = claims.parse("a > b on mosi-intra: Non0_acc_2 +2.47")
    assert claims.judge(c, measured, ci, p, 1.2, 0.05, "results").verdict == word
    m = claims.parse("a > b on mosi-intra: MAE -0.0247")  # the same story in MAE units, signs flipped
    v = claims.judge(m, -measured / 100, (-ci[1] / 100, -ci[0] / 100), p, 0.012, 0.05, "results")
    assert v.verdict == word


def test_verify_against_results(res, tmp_path):
    paired = compare.pair(res, "synth-intra", "strong", "weak")
    row = compare.compare(paired, n_resamples=2000, metric_names=["MAE"]).row("MAE").result
    assert row.p < 0.05  # the premise of this test
    exact = claims.parse(f"strong > weak on synth-intra: MAE {row.diff:+.5f}")
    big = claims.parse(f"strong > weak on synth-intra: MAE {row.diff * 5:+.5f}")
    verdicts = claims.verify([exact, big], res, n_resamples=2000)
    assert [v.verdict for v in verdicts] == ["supported", "significant, but smaller than claimed"]
    assert verdicts[0].measured == pytest.approx(row.diff)
    backwards = claims.parse(f"weak > strong on synth-intra: MAE {row.diff:+.5f}")
    assert claims.verify([backwards], res, n_resamples=2000)[0].verdict == "contradicted"
    null = claims.verify([claims.parse("strong2 > strong on synth-intra: Non0_acc_2 +2.47")], res, n_resamples=2000)[0]
    if null.verdict == "not significant":
        assert null.mde > 0 and "smallest difference" in null.note
    # Holm across every claim in both modes; CI and MDE at the level that decides each (multiplicity.holm_levels)
    rep = claims.parse("strong > mean on synth-intra: Non0_acc_2 +5", claims.Reported(60.0, 1.0, 5, 50.0, 2.0, 5))
    both = claims.verify([exact, big, rep], res, n_resamples=2000)
    raw = [claims.measure(c, res, n_resamples=2000).p for c in (exact, big, rep)]
    assert [v.p for v in both] == pytest.approx(list(stats.holm(raw)))
    assert [v.level for v in both] == pytest.approx(list(multiplicity.holm_levels(raw, 0.05)))
    assert [p <= v.level for p, v in zip(raw, both)] == [v.p <= 0.05 for v in both]
    assert all(0.05 / 3 - 1e-12 <= v.level <= 0.05 for v in both)
    alone = claims.verify_reported(rep)
    assert both[2].p >= alone.p and both[2].source == "reported"
    lo, hi = both[0].ci
    m = claims.measure(exact, res, n_resamples=2000)
    assert (lo, hi) == pytest.approx(m.variance.interval(m.diff, both[0].level))
    assert m.variance.p_value(m.diff - lo) == pytest.approx(both[0].level, abs=1e-3)  # the CI edge: p = its level
    assert both[0].mde == pytest.approx(m.variance.mde(both[0].level))
    # a claims file goes through the CLI, Holm across its claims
    f = write_file(tmp_path / "claims.toml", f"""
        [[claim]]
        text = "strong > weak on synth-intra: MAE {row.diff:+.5f}"
        [[claim]]
        text = "strong > mean on synth-intra: Non0_acc_2 +5"
        reported = {{a = [60.0, 1.0, 5], b = [50.0, 2.0, 5]}}
        """)
    proc = msabench("verify", "--claims", f, "--results", res, "--resamples", 500)
    assert proc.returncode == 0, proc.stderr
    assert "supported" in proc.stdout and "reported" in proc.stdout


def test_verify_reported_matches_welch():
    proc = msabench("verify", "--claim", "derl > prlf on mosi-intra: Non0_acc_2 +2.47",
                    "--reported", 85.2, 1.1, 3, 82.73, 1.4, 3)
    assert proc.returncode == 0, proc.stderr
    t = sps.ttest_ind_from_stats(85.2, 1.1, 3, 82.73, 1.4, 3, equal_var=False)
    c = claims.parse("derl > prlf on mosi-intra: Non0_acc_2 +2.47", claims.Reported(85.2, 1.1, 3, 82.73, 1.4, 3))
    v = claims.verify_reported(c)
    assert v.p == pytest.approx(t.pvalue) and v.measured == pytest.approx(2.47)
    assert v.verdict == ("supported" if t.pvalue < 0.05 else "not significant")
    assert compare.format_p(t.pvalue) in proc.stdout
    one_line_error(msabench("verify", "--claim", "derl > prlf on mosi-intra: Non0_acc_2 +2.47",
                            "--reported", 85.2, 1.1, 1, 82.73, 1.4, 3), "at least 2 seeds")
    one_line_error(msabench("verify", "--claim", "derl prlf"), "does not parse", "grammar")


def test_leaderboard_marks_differences_and_draws_figures(res, tmp_path):
    settings = board.Settings(n_resamples=1000, curve_resamples=300)
    path = leaderboard.write(res, tmp_path, settings=settings)
    text = path.read_text()
    entries = [e for e in board.collect(res)["synth-intra"] if "[" not in e.model]
    order = board.ranked(entries, "Non0_acc_2")
    judged = board.judge(protocols.load("synth-intra"), order, settings)
    vs = {r.model: r for r in judged.rows}
    assert set(vs) == {e.model for e in order}
    # every model against every other, the one-sided p of each pair from the paired test, closed testing over them
    names = [r.model for r in judged.rows]
    by_name = {e.model: e for e in order}
    p_beats = np.full((len(names), len(names)), np.nan)
    for a, i in enumerate(names):
        for b, j in enumerate(names):
            if a == b:
                continue
            paired = compare.pair_units(list(by_name[j].units), list(by_name[i].units))
            c = stats.paired_bootstrap(paired.a, paired.b, paired.labels, paired.seeds, "mosi", n_resamples=1000,
                                       priors={"Non0_acc_2": judged.pool} if judged.pool else None)["Non0_acc_2"]
            p_beats[b, a] = c.variance.p_greater(c.diff)
    best = multiplicity.best_set(p_beats, 0.05)
    for a, r in enumerate(judged.rows):
        assert r.p_adj == pytest.approx(best.p_adj[a], rel=1e-9)
        # the interval decides the verdict, and agrees with the closed test
        assert (r.verdict == "worse") == (r.ci[1] < 0) == (r.p_adj <= 0.05)
        assert r.diff == pytest.approx(r.value - vs[r.rival].value) and r.mde > 0
    assert vs["mean"].verdict == "worse"  # a constant predictor, far below the rest
    section = text.split("### synth-intra")[1]
    for model, v in vs.items():
        shown = submission.display_name(model)  # tables name models as readers know them
        row = next(line for line in section.splitlines() if line.startswith("|") and f" {shown} " in line)
        assert row.rstrip(" |").endswith(v.verdict)
    assert "not shown worse than the best" in text
    # the best value of each column is in bold
    best_mae = min(e.aggregate("MAE")[0] for e in entries)
    assert f"**{best_mae:.4f}" in text
    assert (tmp_path / "synth-intra-curve.png").stat().st_size > 5000
    # conditions are not independent blocks: mean ranks, described, with no test and no CD diagram
    assert not list(tmp_path.glob("*-cd.png")) and "Friedman" not in text and "critical difference" not in text
    scores = np.array([[e.condition("Non0_acc_2", c.name)[0] for e in order]
                       for c in protocols.load("synth-intra").conditions])
    ranks = sps.rankdata(-scores, axis=1).mean(0)
    assert f"{order[int(np.argmin(ranks))].model} {ranks.min():.2f}" in text and "descriptive only" in text
    assert "## Synthetic data" in text and "### synth-inter" in text


def _fake_units(rng, model, seeds, y, quality):
    """Result units as the runner makes them, with predictions of a given quality."""
    from msabench import results as R
    from msabench import runner

    p = protocols.load("synth-inter")
    units = []
    for s in seeds:
        preds, conds = [], []
        for c in p.conditions:
            preds.append(y + rng.normal(0, quality, y.size))
            conds += [c.name] * y.size
        pred = np.concatenate(preds)
        labels = np.tile(y, len(p.conditions))
        cond = np.array(conds)
        units.append(R.UnitResult(
            protocol=p.name, model=model, seed=s, ids=np.tile(np.array([f"v{i}$_$1" for i in range(y.size)]),
                                                             len(p.conditions)),
            predictions=pred, labels=labels, conditions=cond,
            metrics=runner.condition_metrics(pred, labels, cond, p),
            manifest={"protocol_fingerprint": p.fingerprint, "dataset_fingerprint": "d", "masks_fingerprint": "m",
                      "submission_sha256": model, "seed": s, "conditions": [c.name for c in p.conditions],
                      "dataset": p.dataset, "split": p.split}))
    return board.Entry(p.name, model, tuple(units))


def test_leaderboard_ranks_and_tests_on_the_same_seeds():
    """A model that is better on the shared seeds but ranked below #1 on its own seeds: before, it was tested
    against #1 on the shared seeds, found significantly better and labelled "worse"."""
    rng = np.random.default_rng(0)
    y = np.clip(rng.normal(0, 1.5, 400), -3, 3)
    good = _fake_units(rng, "good", [1, 2, 3], y, 0.6)
    # "lucky" has extra seeds with perfect predictions that lift its all-seed mean above "good"
    lucky = _fake_units(rng, "lucky", [1, 2, 3], y, 1.5)
    extra = _fake_units(rng, "lucky", [4, 5, 6, 7, 8, 9], y, 0.0)
    lucky = board.Entry(lucky.protocol, lucky.model, lucky.units + extra.units)
    assert lucky.aggregate("Non0_acc_2")[0] > good.aggregate("Non0_acc_2")[0]
    p = protocols.load("synth-inter")
    text = leaderboard.protocol_section(p, [good, lucky], settings=board.Settings(n_resamples=500))
    rows = [line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert " good " in rows[0] and " lucky " in rows[1]  # ranked on seeds 1-3, where good is better
    assert rows[1].rstrip(" |").endswith("worse") and "left out: lucky seed 4, lucky seed 5" in text
    assert "seeds every model shares (1, 2, 3)" in text


def test_leaderboard_cli(res, tmp_path):
    proc = msabench("leaderboard", "--results", res, "--out", tmp_path, "--resamples", 200, "--no-figures")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "README.md").read_text()
    assert "(200 resamples)" in text and "not shown worse than the best" in text
    assert not list(tmp_path.glob("*.png"))
    one_line_error(msabench("leaderboard", "--results", tmp_path / "nothing", "--out", tmp_path / "o"),
                   "--results", "nothing: no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(msabench("leaderboard", "--results", tmp_path / "empty", "--out", tmp_path / "o"),
                   "no finished results")


def test_compare_pools_the_folders_retraining_variance(res, tmp_path):
    """With at least 4 models whose seeds vary, compare moderates the pair's retraining variance by the
    folder's (and says so); a model run on one seed can then be compared at all."""
    import shutil

    from msabench import variance

    folder = tmp_path / "results"
    shutil.copytree(res, folder)
    data = small_dataset(sizes=(300, 60, 200))
    p = protocols.load("synth-intra")
    for name, noise, alpha, seeds in (("weak2", 3.0, 2.0, SEEDS), ("strong3", 0.0, 3.0, SEEDS),
                                      ("solo", 1.0, 1.0, SEEDS[:1])):
        path = write_file(tmp_path / f"{name}.py", RIDGE.format(name=name, noise=noise, alpha=alpha))
        executors.run(p, path, out=folder, dataset=data, seeds=seeds)
    priors = compare.board_prior(folder, "synth-intra", metric_names=["MAE"])
    pr = priors["MAE"]
    assert pr.n_models == 6 and pr.nu == 2  # strong, strong2, strong3, weak, weak2, mean (solo: 1 seed)
    paired = compare.pair(folder, "synth-intra", "strong", "weak")
    own = compare.compare(paired, n_resamples=500, metric_names=["MAE"]).row("MAE").result
    pooled = compare.compare(paired, n_resamples=500, metric_names=["MAE"], priors=priors).row("MAE").result
    d = stored(folder, "strong", "MAE") - stored(folder, "weak", "MAE")
    moderated = (pr.df * pr.s2 + 2 * np.var(d, ddof=1)) / (pr.df + 2)
    assert pooled.se_seeds == pytest.approx(math.sqrt(moderated / 3), rel=1e-9)
    assert pooled.df == pr.df + 2 and own.df == 2 and pooled.se_items == pytest.approx(own.se_items)
    assert pooled.variance.pool == (2.0, pr.df, pr.centre_df, pr.ratio)

    proc = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", folder, "--resamples", 300,
                    "--metrics", "MAE")
    assert proc.returncode == 0, proc.stderr
    assert "pooled over 6 models" in proc.stdout and f"prior df {pr.df:g}" in proc.stdout
    off = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", folder, "--resamples", 300,
                   "--metrics", "MAE", "--no-pool")
    assert off.returncode == 0 and "pooled" not in off.stdout and "(2 df)" in off.stdout
    solo = msabench("compare", "solo", "weak", "--protocol", "synth-intra", "--results", folder, "--resamples", 300,
                    "--metrics", "MAE")
    assert solo.returncode == 0 and "pooled over 6 models" in solo.stdout and "1 seed(s)" in solo.stdout
    one_line_error(msabench("compare", "solo", "weak", "--protocol", "synth-intra", "--results", folder,
                            "--no-pool"), "at least 2 seeds")
    assert variance.MIN_MODELS == 4


def test_plan_finds_the_fewest_seeds_for_each_target(res):
    """The budget is the first k whose detectable difference reaches the target, from the pair's variances."""
    from msabench import plan, variance

    pl = plan.plan(res, "synth-intra", metric="MAE", targets=(0.02, 0.05, 0.2), models=("strong", "weak"),
                   n_resamples=500)
    paired = compare.pair(res, "synth-intra", "strong", "weak")
    var = compare.compare(paired, n_resamples=500, metric_names=["MAE"]).row("MAE").result.variance
    assert pl.retraining == pytest.approx(var.seeds * 3, rel=1e-9) and pl.items == pytest.approx(var.items, rel=1e-9)
    assert pl.pool is None  # 'mean' is constant: 3 models whose seeds vary
    for b in pl.budgets:
        if b.two_models is None:
            assert plan.mde_at(plan.MAX_SEEDS, pl.retraining, pl.items, 0.05, 0.8) > b.target
            continue
        k = b.two_models
        assert plan.mde_at(k, pl.retraining, pl.items, 0.05, 0.8) <= b.target
        assert k == 2 or plan.mde_at(k - 1, pl.retraining, pl.items, 0.05, 0.8) > b.target
    ks = [b.two_models or plan.MAX_SEEDS + 1 for b in pl.budgets]
    assert ks == sorted(ks, reverse=True)  # larger targets need no more seeds
    # the detectable difference at k seeds is the one Variance.mde reports for a k-seed comparison
    v3 = variance.Variance(pl.retraining / 3, pl.items, 2.0)
    assert plan.mde_at(3, pl.retraining, pl.items, 0.05, 0.8) == pytest.approx(v3.mde(0.05))
    assert pl.floor < plan.mde_at(plan.MAX_SEEDS, pl.retraining, pl.items, 0.05, 0.8)


def test_plan_cli(res):
    proc = msabench("plan", "--protocol", "synth-intra", "--results", res, "--resamples", 300, "--diff", "0.01", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert "median pair of 4 models" in proc.stdout and "Non0_acc_2" in proc.stdout
    assert re.search(r"\| \+0\.1000 \(\+10\.0 points\) \| (\d+|never.*|> 100) \|", proc.stdout), proc.stdout
    one_line_error(msabench("plan", "strong", "--protocol", "synth-intra", "--results", res), "two models or none")
    one_line_error(msabench("plan", "--protocol", "synth-intra", "--results", res, "--diff", "2.5"),
                   "fractions", "2.5")
    one_line_error(msabench("plan", "strong", "nobody", "--protocol", "synth-intra", "--results", res),
                   "no results for model nobody")


def test_several_results_folders_read_as_one(res, tmp_path):
    """A user's runs next to a board's: `--results mine board` compares across them; a unit in both must
    be the same run."""
    import shutil

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    shutil.copytree(res / "synth-intra" / "strong", mine / "synth-intra" / "strong")
    shutil.copytree(res / "synth-intra", theirs / "synth-intra", ignore=shutil.ignore_patterns("strong"))
    one = compare.compare(compare.pair(res, "synth-intra", "strong", "weak"), n_resamples=500)
    two = compare.compare(compare.pair((mine, theirs), "synth-intra", "strong", "weak"), n_resamples=500)
    assert one.table(claims.scale) == two.table(claims.scale)
    proc = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", mine, theirs,
                    "--resamples", "500")
    assert proc.returncode == 0, proc.stderr
    assert "strong" in proc.stdout
    shutil.copytree(res / "synth-intra" / "strong", theirs / "synth-intra" / "strong")  # the same run twice: fine
    assert len(results.find_units((mine, theirs), "synth-intra", "strong")) == len(SEEDS)
    pred = theirs / "synth-intra" / "strong" / f"seed-{SEEDS[0]}" / "predictions.parquet"
    pred.write_bytes(pred.read_bytes()[:-1] + b"x")  # another run of the same unit
    proc = msabench("compare", "strong", "weak", "--protocol", "synth-intra", "--results", mine, theirs)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "different runs" in proc.stderr, proc.stderr
