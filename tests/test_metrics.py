"""msabench.metrics against independent references (scikit-learn, scipy, a literal port of
MMSA's metricsTop.py) and against numbers derived by hand."""

from __future__ import annotations

import ast
import contextlib
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score

from msabench import metrics as M
from msabench.errors import MsabenchError

SIZES = (1, 2, 3, 7, 50, 1000)
SIMS_SPECIAL = np.array([-1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0])


@contextlib.contextmanager
def no_warnings():
    """Any warning raised by our code under test becomes a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def compute(p, y, kind="mosi"):
    with no_warnings():
        return M.compute(p, y, kind)


# ---------------------------------------------------------------- references


def ref_mosi(p, y):
    """MMSA's __eval_mosei_regression, literally, but with f1_score(y_true, y_pred)."""
    p7, y7 = np.clip(p, -3.0, 3.0), np.clip(y, -3.0, 3.0)
    p5, y5 = np.clip(p, -2.0, 2.0), np.clip(y, -2.0, 2.0)
    out = {}
    out["Has0_acc_2"] = accuracy_score(y >= 0, p >= 0)
    out["Has0_F1_score"] = f1_score(y >= 0, p >= 0, average="weighted")
    non_zeros = np.array([i for i, e in enumerate(y) if e != 0], dtype=int)
    if non_zeros.size:
        out["Non0_acc_2"] = accuracy_score(y[non_zeros] > 0, p[non_zeros] > 0)
        out["Non0_F1_score"] = f1_score(y[non_zeros] > 0, p[non_zeros] > 0, average="weighted")
    else:
        out["Non0_acc_2"] = out["Non0_F1_score"] = float("nan")
    out["Mult_acc_5"] = np.sum(np.round(p5) == np.round(y5)) / float(len(y))
    out["Mult_acc_7"] = np.sum(np.round(p7) == np.round(y7)) / float(len(y))
    out["MAE"] = np.mean(np.absolute(p - y))
    out["Corr"] = ref_corr(p, y)
    return out


def ref_corr(p, y):
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    r = np.corrcoef(p, y)[0][1]
    assert math.isclose(r, pearsonr(p, y)[0], rel_tol=1e-9, abs_tol=1e-12)
    return r


def ref_sims_classes(x, ms):
    """MMSA's loop: value in (ms[i], ms[i+1]] -> class i."""
    out = x.copy()
    for i in range(len(ms) - 1):
        out[np.logical_and(x > ms[i], x <= ms[i + 1])] = i
    return out


def ref_sims(p, y):
    """MMSA's __eval_sims_regression, literally."""
    p, y = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)
    ms2, ms3 = [-1.01, 0.0, 1.01], [-1.01, -0.1, 0.1, 1.01]
    ms5 = [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
    p2, y2 = ref_sims_classes(p, ms2), ref_sims_classes(y, ms2)
    p3, y3 = ref_sims_classes(p, ms3), ref_sims_classes(y, ms3)
    p5, y5 = ref_sims_classes(p, ms5), ref_sims_classes(y, ms5)
    return {
        "Mult_acc_2": accuracy_score(y2, p2),
        "Mult_acc_3": accuracy_score(y3, p3),
        "Mult_acc_5": accuracy_score(y5, p5),
        "F1_score": f1_score(y2, p2, average="weighted"),
        "MAE": np.mean(np.absolute(p - y)),
        "Corr": ref_corr(p, y),
    }


def assert_same(got, want):
    assert list(got) == list(want)
    for name in want:
        g, w = got[name], float(want[name])
        assert type(g) is float, name
        if math.isnan(w):
            assert math.isnan(g), (name, g)
        else:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-12), (name, g, w)


# ---------------------------------------------------------------- random data


def mosi_data(n, seed):
    rng = np.random.default_rng(seed)
    # MOSI labels are means of annotator scores: multiples of 1/3, many exact zeros,
    # plus half-integers to exercise round-half-to-even.
    y = rng.integers(-9, 10, n) / 3.0
    y[rng.random(n) < 0.2] = 0.0
    half = rng.random(n) < 0.2
    y[half] = rng.integers(-4, 4, half.sum()) + 0.5
    p = rng.normal(0, 2.0, n)  # beyond [-3, 3] fairly often
    p[rng.random(n) < 0.1] = 0.0
    half = rng.random(n) < 0.2
    p[half] = rng.integers(-4, 4, half.sum()) + 0.5
    p[rng.random(n) < 0.05] = 5.0
    return p, y


def sims_data(n, seed):
    rng = np.random.default_rng(seed)
    y = np.round(rng.uniform(-1, 1, n), 1)  # SIMS labels are on a 0.2-ish grid
    pick = rng.random(n) < 0.4
    y[pick] = rng.choice(SIMS_SPECIAL, pick.sum())
    p = rng.normal(0, 0.8, n)  # often beyond [-1, 1]
    pick = rng.random(n) < 0.4
    p[pick] = rng.choice(np.concatenate([SIMS_SPECIAL, [-1.5, 2.0]]), pick.sum())
    return p, y


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", range(5))
def test_mosi_matches_mmsa_reference(n, seed):
    p, y = mosi_data(n, seed)
    assert_same(compute(p, y, "mosi"), ref_mosi(p, y))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", range(5))
def test_sims_matches_mmsa_reference(n, seed):
    p, y = sims_data(n, seed)
    assert_same(compute(p, y, "sims"), ref_sims(p, y))


def test_random_data_exercises_the_corner_cases():
    # Guard on the generators themselves: the comparisons above only mean something if
    # zeros, half-integers, edges and out-of-range predictions really occur.
    p, y = mosi_data(1000, 0)
    assert (y == 0).any() and (np.abs(y) % 1 == 0.5).any() and (np.abs(p) > 3).any()
    assert (np.abs(p) % 1 == 0.5).any()
    p, y = sims_data(1000, 0)
    for v in SIMS_SPECIAL:
        assert (y == v).any() and (p == v).any(), v
    assert (np.abs(p) > 1).any()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", (2, 3, 5))
def test_weighted_f1_matches_sklearn(n, k):
    rng = np.random.default_rng(n * 10 + k)
    t = rng.integers(0, k, n)
    p = rng.integers(0, k + 1, n)  # class k appears only in predictions
    with no_warnings():
        got = M.weighted_f1(t, p)
    assert got == pytest.approx(f1_score(t, p, average="weighted"), rel=1e-12, abs=1e-15)


def test_weighted_f1_argument_order_matters():
    t = np.array([1, 1, 0, 0])
    p = np.array([1, 1, 1, 0])
    assert M.weighted_f1(t, p) == pytest.approx(f1_score(t, p, average="weighted"))
    assert M.weighted_f1(t, p) != pytest.approx(f1_score(p, t, average="weighted"))


def test_round_half_to_even():
    # np.round: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, -2.5 -> -2
    y = np.array([0.0, 2.0, 2.0, 0.0, -2.0, -2.0])
    p = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    assert M.mult_acc(p, y, 3.0) == 1.0
    # half away from zero would give 1, 2, 3 ...: everything shifted must mismatch
    assert M.mult_acc(p, np.array([1.0, 2.0, 3.0, -1.0, -2.0, -3.0]), 3.0) == pytest.approx(2 / 6)


def test_mult_acc_clips_before_rounding():
    p = np.array([5.0, -7.2, 2.6, 3.4])
    y = np.array([3.0, -3.0, 2.0, 2.0])
    # clip 3: p -> 3 -3 2.6 3 round 3 -3 3 3 ; y 3 -3 2 2 -> 2/4 (unclipped: 0/4)
    assert M.mult_acc(p, y, 3.0) == 0.5
    # clip 2: p -> 2 -2 2 2 ; y -> 2 -2 2 2 -> 4/4
    assert M.mult_acc(p, y, 2.0) == 1.0


def test_sims_bins_edges_go_lower():
    x = np.array([-1.0, -0.7, -0.69, -0.1, -0.09, 0.0, 0.1, 0.11, 0.7, 0.71, 1.0])
    assert M.sims_bins(x, M.SIMS_EDGES_5).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    assert M.sims_bins(x, M.SIMS_EDGES_3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert M.sims_bins(x, M.SIMS_EDGES_2).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


# ---------------------------------------------------------------- hand-computed


def test_mosi_hand_example():
    p = np.array([1.5, -0.5, 2.6, 0.2, -3.4])
    y = np.array([2.0, 0.0, 3.0, -1.0, -2.5])
    # Has0: y>=0 = T T T F F ; p>=0 = T F T T F -> matches at 0, 2, 4 -> 3/5 = 0.6
    #   F1 (y_true first): class T support 3, predicted 3, TP 2 -> 4/6 = 2/3
    #                      class F support 2, predicted 2, TP 1 -> 2/4 = 1/2
    #   weighted = (3 * 2/3 + 2 * 1/2) / 5 = 3/5 = 0.6
    # Non0 drops index 1 (y = 0): y>0 = T T F F ; p>0 = T T T F -> 3/4 = 0.75
    #   F1: class T support 2, predicted 3, TP 2 -> 4/5 ; class F support 2, predicted 1,
    #   TP 1 -> 2/3 ; weighted = (2 * 4/5 + 2 * 2/3) / 4 = 11/15
    #   (swapped arguments would give (3 * 4/5 + 1 * 2/3) / 4 = 23/30: must differ)
    # Mult_acc_7: clip 3: p -> 1.5 -0.5 2.6 0.2 -3 round 2 -0 3 0 -3
    #                     y -> 2 0 3 -1 -2.5        round 2  0 3 -1 -2 (half to even)
    #   matches at 0, 1, 2 -> 3/5 = 0.6
    # Mult_acc_5: clip 2: p -> 1.5 -0.5 2 0.2 -2 round 2 -0 2 0 -2
    #                     y -> 2 0 2 -1 -2       round 2  0 2 -1 -2 -> 4/5 = 0.8
    # MAE: |.5| + |.5| + |.4| + |1.2| + |.9| = 3.5 ; / 5 = 0.7
    # Corr: means p 0.08, y 0.3; centred p 1.42 -.58 2.52 .12 -3.48, y 1.7 -.3 2.7 -1.3 -2.8
    #   Sxy = 2.414 + .174 + 6.804 - .156 + 9.744 = 18.98
    #   Sxx = 2.0164 + .3364 + 6.3504 + .0144 + 12.1104 = 20.828 ; Syy = 19.8
    #   r = 18.98 / sqrt(20.828 * 19.8) = 18.98 / 20.30750... = 0.934630...
    got = compute(p, y, "mosi")
    want = {
        "Has0_acc_2": 0.6,
        "Has0_F1_score": 0.6,
        "Non0_acc_2": 0.75,
        "Non0_F1_score": 11 / 15,
        "Mult_acc_5": 0.8,
        "Mult_acc_7": 0.6,
        "MAE": 0.7,
        "Corr": 18.98 / math.sqrt(20.828 * 19.8),
    }
    assert list(got) == list(M.MOSI_METRICS)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
    assert got["Corr"] == pytest.approx(0.93463, abs=1e-5)


def test_sims_hand_example():
    p = np.array([-1.5, -0.7, -0.1, 0.0, 0.1, 0.7, 0.95, 2.0])
    y = np.array([-0.8, -0.65, -0.1, 0.15, 0.1, 0.71, 1.0, 0.6])
    # clip p -> -1 -0.7 -0.1 0 0.1 0.7 0.95 1 ; y unchanged
    # 5 bins (-.7, -.1, .1, .7; edge -> lower bin):
    #   p: 0 0 1 2 2 3 4 4 ; y: 0 1 1 3 2 4 4 3 -> matches at 0, 2, 4, 6 -> 4/8 = 0.5
    # 3 bins (-.1, .1): p: 0 0 0 1 1 2 2 2 ; y: 0 0 0 2 1 2 2 2 -> 7/8 = 0.875
    # 2 bins (0):       p: 0 0 0 0 1 1 1 1 ; y: 0 0 0 1 1 1 1 1 -> 7/8 = 0.875
    # F1 (y_true first): class 0 support 3, predicted 4, TP 3 -> 6/7
    #                    class 1 support 5, predicted 4, TP 4 -> 8/9
    #   weighted = (3 * 6/7 + 5 * 8/9) / 8 = 221/252 (swapped: 110/126, must differ)
    # MAE on clipped: .2 + .05 + 0 + .15 + 0 + .01 + .05 + .4 = 0.86 ; / 8 = 0.1075
    #   (unclipped would be 0.2125: the clip must apply to MAE too)
    got = compute(p, y, "sims")
    assert list(got) == list(M.SIMS_METRICS)
    assert got["Mult_acc_5"] == 0.5
    assert got["Mult_acc_3"] == 0.875
    assert got["Mult_acc_2"] == 0.875
    assert got["F1_score"] == pytest.approx(221 / 252, rel=1e-12)
    assert got["MAE"] == pytest.approx(0.1075, rel=1e-12)
    assert got["Corr"] == pytest.approx(np.corrcoef(np.clip(p, -1, 1), y)[0, 1], rel=1e-12)
    assert got["Corr"] != pytest.approx(np.corrcoef(p, y)[0, 1], rel=1e-6)


def test_pearson_small_example():
    # centred [-1, 0, 1] and [-1, 1, 0]: Sxy = 1, Sxx = Syy = 2 -> r = 0.5
    assert M.pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    assert M.pearson(np.array([1.0, 2.0, 3.0]), np.array([6.0, 4.0, 2.0])) == pytest.approx(-1.0)


# ---------------------------------------------------------------- nan cases


def test_corr_nan_when_a_side_is_constant():
    p = np.array([0.1, 0.1, 0.1, 0.1])
    y = np.array([1.0, -1.0, 0.5, 2.0])
    assert math.isnan(compute(p, y)["Corr"])
    assert math.isnan(compute(y, p)["Corr"])
    assert math.isnan(compute(p, y, "sims")["Corr"])
    # constant only after SIMS clipping
    assert math.isnan(compute(np.array([2.0, 3.0, 5.0]), np.array([0.1, 0.2, 0.3]), "sims")["Corr"])
    assert not math.isnan(compute(np.array([2.0, 3.0, 5.0]), np.array([0.1, 0.2, 0.3]), "mosi")["Corr"])
    # the mean of [0.1] * 3 is not exactly 0.1, so centring leaves rounding noise that
    # would give a meaningless r (numpy's corrcoef returns one): constant must still be nan
    p3 = np.full(3, 0.1)
    assert np.any(p3 - p3.mean() != 0)
    assert math.isnan(compute(p3, np.array([1.0, -1.0, 0.5]))["Corr"])
    assert math.isnan(M.pearson(np.array([1.0, -1.0, 0.5]), np.full(3, 0.2)))


def test_non0_nan_when_all_labels_zero():
    p = np.array([0.3, -1.0, 2.0])
    y = np.zeros(3)
    got = compute(p, y)
    assert math.isnan(got["Non0_acc_2"]) and math.isnan(got["Non0_F1_score"])
    assert got["Has0_acc_2"] == pytest.approx(2 / 3)
    assert math.isnan(got["Corr"])
    finite = [k for k in M.MOSI_METRICS if k not in ("Non0_acc_2", "Non0_F1_score", "Corr")]
    assert all(math.isfinite(got[k]) for k in finite)


@pytest.mark.parametrize("kind", sorted(M.METRICS))
def test_everything_nan_on_zero_samples(kind):
    got = compute(np.array([]), np.array([]), kind)
    assert list(got) == list(M.METRICS[kind])
    assert all(math.isnan(v) for v in got.values())


def test_single_sample():
    got = compute(np.array([1.2]), np.array([0.8]))
    assert got["Has0_acc_2"] == 1.0 and got["Mult_acc_7"] == 1.0
    assert got["MAE"] == pytest.approx(0.4)
    assert math.isnan(got["Corr"])


# ---------------------------------------------------------------- API and errors


def test_public_constants():
    assert M.METRICS == {"mosi": M.MOSI_METRICS, "sims": M.SIMS_METRICS}
    assert M.MOSI_METRICS == (
        "Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
        "Mult_acc_5", "Mult_acc_7", "MAE", "Corr",
    )
    assert M.SIMS_METRICS == ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")
    assert M.LOWER_IS_BETTER == frozenset({"MAE"})


def test_module_imports_neither_sklearn_nor_scipy():
    tree = ast.parse(Path(M.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert not names & {"sklearn", "scipy", "pandas", "torch"}, names


def test_compute_accepts_lists_and_default_kind_is_mosi():
    p, y = mosi_data(20, 3)
    assert compute(p.tolist(), y.tolist()) == compute(p, y, "mosi")


@pytest.mark.parametrize(
    "pred, label, kind, fragment",
    [
        ([0.1], [0.2], "mosei", "unknown kind"),
        ([0.1, 0.2], [0.2], "mosi", "shape"),
        ([[0.1], [0.2]], [0.2, 0.1], "mosi", "shape"),
        ([0.1, float("nan")], [0.2, 0.1], "mosi", "prediction"),
        ([0.1, 0.2], [0.2, float("inf")], "sims", "label"),
        (["a", "b"], [0.2, 0.1], "mosi", "not numeric"),
    ],
)
def test_compute_errors(pred, label, kind, fragment):
    with pytest.raises(MsabenchError) as exc:
        M.compute(pred, label, kind)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg


# ---------------------------------------------------------------- score_csv


def write(path, text):
    path.write_text(text)
    return path


def test_score_csv_matches_compute(tmp_path):
    p, y = mosi_data(40, 7)
    for kind, labels in (("mosi", np.clip(y, -3, 3)), ("sims", np.clip(y, -3, 3) / 3)):  # each in its range
        lines = ["id,label,prediction"] + [f"v{i},{float(b)!r},{float(a)!r}" for i, (a, b) in enumerate(zip(p, labels))]
        f = write(tmp_path / f"{kind}.csv", "\n".join(lines) + "\n")
        assert M.score_csv(str(f), kind=kind) == compute(p, labels, kind)
    with pytest.raises(MsabenchError, match="column 'label': .* is outside the sims label range"):
        M.score_csv(tmp_path / "mosi.csv", kind="sims")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("", ["empty"]),
        ("prediction,label\n", ["no data rows"]),
        ("prediction,score\n0.1,0.2\n", ["'label'"]),
        ("pred,label\n0.1,0.2\n", ["'prediction'"]),
        ("prediction,label\n0.1,0.2\n0.3,abc\n0.5,0.5\n", ["line 3", "'label'", "'abc'"]),
        ("prediction,label\n0.1,0.2\n,0.4\n", ["line 3", "'prediction'"]),
        ("prediction,label\n0.1,0.2\n0.3\n", ["line 3", "'label'", "missing"]),
        ("prediction,label\n0.1,0.2\n0.5,0.5\nnan,0.1\n", ["line 4", "'prediction'", "finite"]),
    ],
)
def test_score_csv_errors(tmp_path, text, fragments):
    f = write(tmp_path / "bad.csv", text)
    with pytest.raises(MsabenchError) as exc:
        M.score_csv(f)
    msg = str(exc.value)
    assert "bad.csv" in msg and "\n" not in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_score_csv_missing_file_and_bad_kind(tmp_path):
    with pytest.raises(MsabenchError, match="nope.csv"):
        M.score_csv(tmp_path / "nope.csv")
    f = write(tmp_path / "ok.csv", "prediction,label\n0.1,0.2\n")
    with pytest.raises(MsabenchError, match="unknown kind"):
        M.score_csv(f, kind="iemocap")
