"""`msabench verify` in papers' language: metric spellings ("Non0 Acc-2", "Acc-7", "F1"), gains in
percent, points, pp or as a fraction, and CIs at the level that decides each claim (alpha * p / p_Holm)
so that an interval excludes 0 exactly when the Holm-adjusted p is below alpha."""

import math
import re

import numpy as np
import pytest
from scipy import stats as sps

from msabench import cli, claims, compare, stats
from msabench.errors import MsabenchError

from conftest import ROOT, verify_rows, write_file
from test_cli import msabench, one_line_error

REPORTED = ["--reported", "85.2", "1.1", "3", "82.73", "1.4", "3"]
MOSI_SPELLINGS = ["Has0 Acc-2", "Has0 F1", "Non0 Acc-2", "Non0 F1", "Acc-5", "Acc-7", "MAE", "Corr"]  # METRICS order
SIMS_SPELLINGS = ["Acc-2", "Acc-3", "Acc-5", "F1", "MAE", "Corr"]


def run_cli(capsys, *args):
    """`msabench ARGS` in this process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_error(capsys, args, *needles):
    code, out, err = run_cli(capsys, *args)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msabench: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def refused(text, *needles):
    with pytest.raises(MsabenchError) as e:
        claims.parse(text)
    message = str(e.value)
    assert "\n" not in message
    for n in needles:
        assert n in message, (n, message)
    return message


# ----------------------------------------------------------------------------- metric spellings


@pytest.mark.parametrize("protocol, spelling, key", [
    *[(p, s, "Has0_acc_2") for p in ("mosi-intra", "mosei-intra")
      for s in ("Has0 Acc-2", "Has0-Acc2", "has0 acc2", "HAS0_ACC_2", "Has0_acc_2", "has0-acc-2", "Has0 Acc–2")],
    *[(p, s, "Non0_acc_2") for p in ("mosi-intra", "mosei-intra")
      for s in ("Non0 Acc-2", "Non0-Acc2", "non0acc2", "Non0_acc_2", "NON0 ACC 2")],
    ("mosi-intra", "Has0 F1", "Has0_F1_score"),
    ("mosi-intra", "has0-f1", "Has0_F1_score"),
    ("mosi-intra", "Has0_F1_score", "Has0_F1_score"),
    ("mosi-intra", "Non0 F1", "Non0_F1_score"),
    ("mosei-intra", "non0_f1", "Non0_F1_score"),
    ("mosi-intra", "Non0 F1 score", "Non0_F1_score"),
    ("mosi-intra", "Acc-5", "Mult_acc_5"),
    ("mosi-intra", "acc5", "Mult_acc_5"),
    ("mosi-intra", "Mult_acc_5", "Mult_acc_5"),
    ("mosi-intra", "Acc-7", "Mult_acc_7"),
    ("mosei-intra", "ACC 7", "Mult_acc_7"),
    ("mosi-intra", "Mult-Acc-7", "Mult_acc_7"),
    ("sims-intra", "Acc-2", "Mult_acc_2"),
    ("sims-intra", "acc2", "Mult_acc_2"),
    ("sims-intra", "Mult_acc_2", "Mult_acc_2"),
    ("sims-intra", "Acc-3", "Mult_acc_3"),
    ("sims-intra", "Acc_3", "Mult_acc_3"),
    ("sims-intra", "Acc-5", "Mult_acc_5"),
    ("sims-intra", "F1", "F1_score"),
    ("sims-intra", "f1", "F1_score"),
    ("sims-intra", "F1_score", "F1_score"),
    ("sims-intra", "F1 score", "F1_score"),
])
def test_accuracy_and_f1_spellings(protocol, spelling, key):
    c = claims.parse(f"derl > prlf on {protocol}: {spelling} +2.47%")
    assert (c.better, c.worse, c.protocol, c.metric, c.value) == ("derl", "prlf", protocol, key, 2.47)
    assert claims.parse(f"derl > prlf on {protocol}: {spelling} +2.47").metric == key  # bare, >= 1: points


@pytest.mark.parametrize("protocol", ["mosi-intra", "mosei-intra", "sims-intra"])
@pytest.mark.parametrize("spelling, key", [("MAE", "MAE"), ("mae", "MAE"), ("Corr", "Corr"), ("CORR", "Corr")])
def test_mae_and_corr_spellings(protocol, spelling, key):
    sign = "−" if key == "MAE" else "+"  # unicode minus: lower MAE is better
    c = claims.parse(f"a > b on {protocol}: {spelling} {sign}0.015")
    assert (c.metric, c.value, c.improvement) == (key, -0.015 if key == "MAE" else 0.015, 0.015)


@pytest.mark.parametrize("protocol", ["mosi-intra", "mosei-intra"])
@pytest.mark.parametrize("spelling, meant", [
    ("Acc-2", '"Non0 Acc-2" or "Has0 Acc-2"'), ("acc2", '"Non0 Acc-2" or "Has0 Acc-2"'),
    ("ACC_2", '"Non0 Acc-2" or "Has0 Acc-2"'), ("Acc 2", '"Non0 Acc-2" or "Has0 Acc-2"'),
    ("F1", '"Non0 F1" or "Has0 F1"'), ("f1", '"Non0 F1" or "Has0 F1"'), ("F1-score", '"Non0 F1" or "Has0 F1"'),
    ("F1_score", '"Non0 F1" or "Has0 F1"'),
])
def test_bare_acc2_and_f1_are_ambiguous_on_mosi(protocol, spelling, meant):
    message = refused(f"a > b on {protocol}: {spelling} +2.47%", f"metric {spelling!r} is ambiguous on {protocol}",
                      "Has0 or Non0", "Has0/Non0", f"write {meant}", "accepted for MOSI/MOSEI:")
    assert all(s in message for s in MOSI_SPELLINGS)


@pytest.mark.parametrize("protocol, spelling", [
    ("sims-intra", "Acc-7"), ("sims-intra", "Mult_acc_7"), ("sims-intra", "Has0 Acc-2"), ("sims-intra", "Non0 F1"),
    ("sims-intra", "Non0_acc_2"), ("mosi-intra", "Acc-3"), ("mosi-intra", "Mult_acc_3"), ("mosei-intra", "Acc-3"),
    ("mosi-intra", "Mult_acc_2"), ("mosi-intra", "Acc-9"), ("mosi-intra", "Has0/Non0 Acc-2"),
    ("mosi-intra", "Accuracy"), ("sims-intra", "Has0 F1"),
])
def test_a_metric_the_dataset_does_not_have_is_refused_with_the_accepted_spellings(protocol, spelling):
    message = refused(f"a > b on {protocol}: {spelling} +2.47%", f"metric {spelling!r} does not exist for {protocol}",
                      "accepted for")
    kind, names = ("SIMS", SIMS_SPELLINGS) if protocol.startswith("sims") else ("MOSI/MOSEI", MOSI_SPELLINGS)
    listed = message.split(f"accepted for {kind}: ", 1)[1]
    assert listed.startswith(", ".join(names) + " (or the keys ")
    if kind == "SIMS":
        assert "Acc-7" not in listed and "Has0" not in listed and "Non0" not in listed


def test_every_msabench_key_is_its_own_spelling():
    from msabench import metrics

    for protocol, kind in (("mosi-intra", "mosi"), ("sims-intra", "sims")):
        for key in metrics.METRICS[kind]:
            value = "-0.02" if key == "MAE" else "+0.02" if key == "Corr" else "+2"
            assert claims.parse(f"a > b on {protocol}: {key} {value}").metric == key


# ----------------------------------------------------------------------------- gains


@pytest.mark.parametrize("written, points", [
    ("+2.47%", 2.47), ("+2.47 %", 2.47), ("2.47%", 2.47), ("+2.47 points", 2.47), ("+2.47 point", 2.47),
    ("+2.47 Points", 2.47), ("+2.47 pp", 2.47), ("+2.47pp", 2.47), ("+2.47 PP", 2.47), ("+2.47 p.p.", 2.47),
    ("+2.47 percentage points", 2.47), ("+0.0247 fraction", 2.47), ("+0.0247fraction", 2.47),
    ("+2.47", 2.47), ("2.47", 2.47), ("+1", 1.0), ("+1.0", 1.0), ("+12", 12.0),
    ("+0.5%", 0.5), ("+0.5 points", 0.5), ("+0.5pp", 0.5), ("+.5 pp", 0.5), ("+0.005 fraction", 0.5),
    ("+1 fraction", 100.0), ("+0.25 FRACTION", 25.0),
])
def test_accuracy_gains_in_points_percent_or_fraction(written, points):
    c = claims.parse(f"derl > prlf on mosi-intra: Non0 Acc-2 {written}")
    assert c.value == points  # paper units (points), exactly: "0.0247 fraction" is 2.47, not 2.4699999999999998
    assert c.improvement == points
    assert claims.parse(f"derl > prlf on sims-intra: F1 {written}").value == points


@pytest.mark.parametrize("written, points", [
    ("-2.47%", 2.47), ("−2.47%", 2.47), ("−2.47 points", 2.47), ("-0.0247 fraction", 2.47), ("−0.0247 fraction", 2.47),
    ("−2.47", 2.47), ("-1", 1.0), ("−0.5 pp", 0.5),
])
def test_less_than_claims_and_negative_values(written, points):
    # "prlf < derl: -x" is "derl > prlf: +x"
    c = claims.parse(f"prlf < derl on mosi-intra: Has0 Acc-2 {written}")
    assert (c.better, c.worse, c.metric, c.value) == ("derl", "prlf", "Has0_acc_2", points)
    # a negative gain for the model said to be better is refused as before, whatever the unit
    refused(f"derl > prlf on mosi-intra: Has0 Acc-2 {written}", "is not an improvement", "derl − prlf")


@pytest.mark.parametrize("number, as_fraction", [
    ("+0.0247", "+2.47"), ("0.5", "+50"), ("+.5", "+50"), ("-0.3", "-30"), ("−0.0247", "-2.47"), ("+0.99", "+99"),
])
def test_a_bare_accuracy_gain_below_one_is_ambiguous(number, as_fraction):
    op = "<" if number.startswith(("-", "−")) else ">"
    text = f"derl {op} prlf on mosi-intra: Non0 Acc-2 {number}"
    value = float(number.replace("−", "-"))
    message = refused(text, f"Non0_acc_2 {number} is ambiguous", f"as percentage points it is {value:+g} points",
                      f"as a fraction {as_fraction} points", f'"{number}%"', f'"{number} points"', f'"{number} pp"',
                      f'"{number} fraction"', f'(= "{as_fraction} points")')
    assert len(message) < 400
    refused(f"derl {op} prlf on sims-intra: Acc-2 {number}", f"Mult_acc_2 {number} is ambiguous")
    # the explicit spellings are both accepted, and differ by 100x
    assert abs(claims.parse(f"{text} points").value) == abs(value)
    assert abs(claims.parse(f"{text} fraction").value) == pytest.approx(abs(value) * 100)


def test_zero_is_not_ambiguous_but_not_an_improvement():
    refused("a > b on mosi-intra: Non0 Acc-2 +0", "is not an improvement")
    refused("a > b on mosi-intra: Non0 Acc-2 0.0%", "is not an improvement")


@pytest.mark.parametrize("written", ["+2 fraction", "-1.5 fraction", "+100 fraction"])
def test_a_fraction_beyond_one_is_refused(written):
    op = "<" if written.startswith("-") else ">"
    number = written.split()[0]
    refused(f"a {op} b on mosi-intra: Acc-7 {written}", "a fraction lies between -1 and 1",
            f'"{number} points"', f'"{number}%"')


@pytest.mark.parametrize("metric", ["MAE", "Corr"])
@pytest.mark.parametrize("unit", ["%", " %", " points", " pp", "pp", " fraction", " percentage points"])
def test_mae_and_corr_are_not_percentages(metric, unit):
    number = "-0.02" if metric == "MAE" else "+0.02"
    refused(f"a > b on mosi-intra: {metric} {number}{unit}", f"{metric} is not a percentage",
            f'"{metric} {number}"', "no %, points, pp or fraction")
    # bare: its own units, small values included
    assert claims.parse(f"a > b on mosi-intra: {metric} {number}").value == float(number)
    assert claims.parse(f"a > b on sims-intra: {metric.lower()} {number.replace('-', '−')}").value == float(number)


@pytest.mark.parametrize("text", [
    "derl beats prlf by 2 points", "derl > prlf on mosi-intra: Non0 Acc-2 +2.47 percent",
    "derl > prlf on mosi-intra: Non0 Acc-2", "derl > prlf on mosi-intra: +2.47%", "derl > prlf mosi-intra Acc-7 +2",
    "derl > prlf on mosi-intra: Non0 Acc-2 ++2.47", "derl > prlf on mosi-intra: Non0 Acc-2 +2.47%%",
])
def test_what_does_not_parse_names_the_grammar(text):
    message = refused(text, "does not parse; grammar: MODEL_A > MODEL_B on PROTOCOL: METRIC ±VALUE", "Non0 Acc-2",
                      "+2.47%", "+2.47 points", "+0.0247 fraction", "MAE and Corr")
    assert len(message) < 900  # one line that the CLI prints whole


def test_grammar_and_docstring_state_the_rules():
    for needle in ("Has0 Acc-2", "Non0 Acc-2", "Acc-7", "Acc-3", "+2.47%", "+2.47 pp", "+0.0247 fraction",
                   "size 1 or more"):
        assert needle in claims.GRAMMAR, needle
    for needle in ("ambiguous", "fraction", "never", "the level that decides it under Holm"):
        assert needle in claims.__doc__, needle


def test_load_file_reads_papers_spellings(tmp_path):
    f = write_file(tmp_path / "claims.toml", """
        [[claim]]
        text = "derl > prlf on mosi-intra: Non0 Acc-2 +2.47%"
        reported = {a = [85.2, 1.1, 3], b = [82.73, 1.4, 3]}
        [[claim]]
        text = "derl > prlf on sims-intra: F1 +0.0247 fraction"
        [[claim]]
        text = "prlf < derl on mosei-intra: mae +0.03"
        [[claim]]
        text = "derl > prlf on mosi-intra: Acc-7 +1.2 pp"
        """)
    got = claims.load_file(f)
    assert [(c.metric, c.value) for c in got] == [("Non0_acc_2", 2.47), ("F1_score", 2.47), ("MAE", -0.03),
                                                  ("Mult_acc_7", 1.2)]
    assert got[0].reported == claims.Reported(85.2, 1.1, 3, 82.73, 1.4, 3)
    bad = write_file(tmp_path / "bad.toml", """
        [[claim]]
        text = "derl > prlf on mosi-intra: Acc-2 +2.47%"
        """)
    with pytest.raises(MsabenchError, match="ambiguous"):
        claims.load_file(bad)


# ----------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("text, claimed", [
    ("derl > prlf on mosi-intra: Non0 Acc-2 +2.47%", "+2.47pp"),
    ("derl > prlf on mosi-intra: non0-acc2 +2.47 points", "+2.47pp"),
    ("derl > prlf on mosi-intra: Has0 Acc-2 +2.47pp", "+2.47pp"),
    ("derl > prlf on mosi-intra: Non0_acc_2 +2.47", "+2.47pp"),
    ("derl > prlf on mosi-intra: Non0 F1 +0.0247 fraction", "+2.47pp"),
    ("derl > prlf on mosei-intra: Has0 F1 +2.47 pp", "+2.47pp"),
    ("derl > prlf on mosi-intra: Acc-5 +2.47%", "+2.47pp"),
    ("derl > prlf on mosi-intra: Acc-7 +2.47%", "+2.47pp"),
    ("derl > prlf on sims-intra: Acc-2 +2.47%", "+2.47pp"),
    ("derl > prlf on sims-intra: Acc-3 +2.47 points", "+2.47pp"),
    ("derl > prlf on sims-intra: F1 +2.47", "+2.47pp"),
    ("prlf < derl on sims-intra: Acc-5 −2.47%", "+2.47pp"),
    ("derl > prlf on mosi-intra: Corr +2.47", "+2.47"),
])
def test_cli_verify_accepts_papers_spellings(capsys, text, claimed):
    code, out, err = run_cli(capsys, "verify", "--claim", text, *REPORTED)
    assert code == 0, err
    [row] = verify_rows(out)
    measured = ("-" if " < " in text else "+") + "2.47" + ("pp" if "pp" in claimed else "")  # --reported: A, B as written
    assert row["line"].startswith(f"#1 {text} (claimed {claimed}; from reported numbers)")
    assert row["measured"] == measured
    t = sps.ttest_ind_from_stats(85.2, 1.1, 3, 82.73, 1.4, 3, equal_var=False)
    assert row["p Holm"] == compare.format_p(t.pvalue)


@pytest.mark.parametrize("text, needles", [
    ("a > b on mosi-intra: Acc-2 +2.47%", ['"Non0 Acc-2" or "Has0 Acc-2"', "accepted for MOSI/MOSEI", *MOSI_SPELLINGS]),
    ("a > b on mosei-intra: F1 +2.47%", ['"Non0 F1" or "Has0 F1"', *MOSI_SPELLINGS]),
    ("a > b on sims-intra: Acc-7 +2.47%", ["'Acc-7' does not exist for sims-intra", "accepted for SIMS",
                                           *SIMS_SPELLINGS]),
    ("a > b on mosi-intra: Acc-3 +2.47%", ["'Acc-3' does not exist for mosi-intra", *MOSI_SPELLINGS]),
    ("a > b on mosi-intra: Non0 Acc-2 +0.0247", ["ambiguous", '"+0.0247%"', '"+0.0247 points"',
                                                 '"+0.0247 fraction"', "+2.47 points"]),
    ("a > b on mosi-intra: MAE -0.02%", ["MAE is not a percentage", '"MAE -0.02"']),
    ("a > b on mosi-intra: Corr +0.02 points", ["Corr is not a percentage"]),
    ("a > b on mosi-intra: Non0 Acc-2 +3 fraction", ["a fraction lies between -1 and 1"]),
    ("a > b on mosi-intra: Non0 Acc-2 −2.47%", ["is not an improvement"]),
    ("a > b on mosi-intra: Non0 Acc-2 +2.47 percent", ["does not parse", "grammar", "+0.0247 fraction"]),
])
def test_cli_verify_refuses_in_one_line(capsys, text, needles):
    cli_error(capsys, ["verify", "--claim", text, *REPORTED], *needles)


def test_cli_verify_published_and_claims_file_read_papers_spellings(capsys, tmp_path):
    # the registry is keyed by msabench metric names; the claim may use the paper's
    code, out, err = run_cli(capsys, "verify", "--published", "--claim", "lnln > almt on mosi-intra: Non0 Acc-2 +2.15%")
    assert code == 0, err
    rows = verify_rows(out)
    assert len(rows) == 2 and all(r["verdict"] == "cannot be tested from published numbers" for r in rows)
    assert all(r["line"].startswith(f"#{i} lnln > almt on mosi-intra: Non0 Acc-2 +2.15% (claimed +2.15pp; from "
                                    "published: ") for i, r in enumerate(rows, 1))
    cli_error(capsys, ["verify", "--published", "--claim", "lnln > almt on mosi-intra: Acc-2 +2.15%"], "ambiguous",
              "Non0 Acc-2")
    f = write_file(tmp_path / "claims.toml", """
        [[claim]]
        text = "derl > prlf on mosi-intra: Non0 Acc-2 +2.47%"
        reported = {a = [85.2, 1.1, 3], b = [82.73, 1.4, 3]}
        [[claim]]
        text = "derl > prlf on sims-intra: F1 +0.03 fraction"
        reported = {a = [75.0, 0.5, 5], b = [72.0, 0.6, 5]}
        """)
    code, out, err = run_cli(capsys, "verify", "--claims", f)
    assert code == 0, err
    assert verify_rows(out)[1]["line"].startswith("#2 derl > prlf on sims-intra: F1 +0.03 fraction (claimed +3pp; ")


def test_cli_subprocess_reads_papers_spellings():
    proc = msabench("verify", "--claim", "derl > prlf on mosi-intra: Non0 Acc-2 +2.47%", *REPORTED)
    assert proc.returncode == 0, proc.stderr
    assert "\n#1 derl > prlf on mosi-intra: Non0 Acc-2 +2.47% (claimed +2.47pp; " in proc.stdout
    one_line_error(msabench("verify", "--claim", "derl > prlf on mosi-intra: Acc-2 +2.47%",
                            "--reported", 85.2, 1.1, 3, 82.73, 1.4, 3), "ambiguous", "Non0 Acc-2", "Has0 Acc-2")
    one_line_error(msabench("verify", "--claim", "derl > prlf on mosi-intra: Non0 Acc-2 +0.0247",
                            "--reported", 85.2, 1.1, 3, 82.73, 1.4, 3), "+0.0247 fraction", "+0.0247 points")


# ----------------------------------------------------------------------------- intervals agree with verdicts


def reported_at(p: float, n: int = 5, std: float = 1.0, base: float = 70.0) -> tuple[claims.Reported, float]:
    """Published numbers whose Welch test gives two-sided p (equal stds and seeds: df = 2n - 2)."""
    se = math.sqrt(2 * std ** 2 / n)
    diff = float(sps.t.ppf(1 - p / 2, 2 * n - 2)) * se
    return claims.Reported(base + diff, std, n, base, std, n), diff


def excludes_zero(ci) -> bool:
    return ci[0] > 0 or ci[1] < 0


def test_decision_levels():
    # the step-down stops at the first: neither is significant, and neither could be above 0.025
    assert claims.decision_levels([0.03, 0.04], 0.05) == pytest.approx([0.025, 0.025])
    # every other claim passes its step: each could be as large as alpha and still be significant
    assert claims.decision_levels([0.001, 0.004, 0.02], 0.05) == pytest.approx([0.05, 0.05, 0.05])
    assert claims.decision_levels([0.001, 0.03, 0.04], 0.05) == pytest.approx([0.05 / 3, 0.025, 0.025])
    # p = 0 (no variance) counts as a passed step; nan (no test) gets alpha and is not counted
    assert claims.decision_levels([0.0, math.nan, 0.01, 0.0], 0.05) == pytest.approx([0.05] * 4)
    # not capped by its own p: [0.7, 0.9] both 0.025 (alpha * p / p_Holm gave 0.035, 0.045)
    assert claims.decision_levels([0.7, 0.9], 0.05) == pytest.approx([0.025, 0.025])


@pytest.mark.parametrize("raw", [(0.03, 0.04), (0.04, 0.03), (0.001, 0.03, 0.04), (0.02, 0.022, 0.024, 0.045), (0.045, 0.02, 0.024, 0.022)])
def test_when_holm_stops_early_no_interval_excludes_zero_of_a_claim_it_does_not_reject(raw):
    todo, alpha = [], 0.05
    for i, p in enumerate(raw):
        rep, diff = reported_at(p)
        todo.append(claims.parse(f"m{i} > base on mosi-intra: Non0 Acc-2 +{diff:.4f}%", rep))
    measured = [claims.measure(c, None) for c in todo]
    assert [m.p for m in measured] == pytest.approx(list(raw), rel=1e-9)
    verdicts = claims.verify(todo)
    adjusted = stats.holm(raw)
    assert [v.p for v in verdicts] == pytest.approx(list(adjusted), rel=1e-9)
    stopped = 0
    for p, v, m in zip(raw, verdicts, measured):
        assert excludes_zero(v.ci) == (v.p < alpha), (p, v.p, v.ci)
        if v.p >= alpha:
            assert v.verdict in ("not significant", "refuted (claimed value outside the CI)")
            assert v.ci[0] < 0 < v.ci[1]
        else:
            assert v.verdict == "supported"
        assert v.level == pytest.approx(claims.decision_levels(list(raw), alpha)[raw.index(p)])
        assert (p <= v.level) == (v.p <= alpha)
        assert v.ci == pytest.approx(tuple(100 * x for x in m.variance.interval(m.diff, v.level)))
        assert v.mde == pytest.approx(100 * m.variance.mde(v.level))
        # Holm's step level for this p (alpha / (m - rank)) would have excluded 0: the case fixed here
        rank = sorted(raw).index(p)
        if v.p >= alpha and excludes_zero(m.variance.interval(m.diff, alpha / (len(raw) - rank))):
            stopped += 1
    assert stopped >= 1


def test_the_cli_prints_intervals_that_hold_zero_when_holm_does_not_reject(capsys, tmp_path):
    lines = []
    for i, p in enumerate((0.001, 0.03, 0.04)):
        rep, diff = reported_at(p)
        lines.append(f'[[claim]]\ntext = "m{i} > base on sims-intra: Acc-2 +{diff:.4f} points"\n'
                     f"reported = {{a = [{rep.mean_a!r}, 1.0, 5], b = [70.0, 1.0, 5]}}\n")
    f = write_file(tmp_path / "claims.toml", "\n".join(lines))
    code, out, err = run_cli(capsys, "verify", "--claims", f, "--alpha", "0.05")
    assert code == 0, err
    rows = verify_rows(out)
    assert [r["line"].split(" > ")[0] for r in rows] == ["#1 m0", "#2 m1", "#3 m2"]
    for row in rows:
        lo, hi, level = re.fullmatch(r"\[([-+][\d.e+-]+), ([-+][\d.e+-]+)\] \(([\d.]+)%\)",
                                     row["CI (Holm level)"]).groups()
        significant = float(row["p Holm"]) < 0.05
        assert (float(lo) > 0 or float(hi) < 0) == significant, row
    assert [r["verdict"] for r in rows] == ["supported", "not significant", "not significant"]
    assert [float(r["p Holm"]) for r in rows] == pytest.approx([0.003, 0.06, 0.06], abs=1e-3)


def test_random_claim_sets_intervals_agree_with_holm_verdicts():
    rng = np.random.default_rng(20240611)
    alpha_choices = (0.05, 0.1, 0.01)
    checked = early = 0
    for _ in range(300):
        m = int(rng.integers(2, 7))
        alpha = float(rng.choice(alpha_choices))
        todo = []
        for i in range(m):
            n_a, n_b = (int(x) for x in rng.integers(2, 11, size=2))
            std_a, std_b = (float(x) for x in rng.uniform(0.2, 3.0, size=2))
            se = math.sqrt(std_a ** 2 / n_a + std_b ** 2 / n_b)
            diff = float(rng.normal(0.0, 3.0)) * se  # p-values spread over (0, 1), many near alpha
            metric = str(rng.choice(["Non0 Acc-2", "Acc-7", "MAE", "Corr"]))
            if metric in ("MAE", "Corr"):
                rep = claims.Reported(0.7 + diff / 100, std_a / 100, n_a, 0.7, std_b / 100, n_b)
                claimed = f"{-0.01:+}" if metric == "MAE" else "+0.01"
            else:
                rep = claims.Reported(70.0 + diff, std_a, n_a, 70.0, std_b, n_b)
                claimed = f"+{float(rng.uniform(0.1, 5.0)):.2f}%"
            todo.append(claims.parse(f"m{i} > base on mosi-intra: {metric} {claimed}", rep))
        raw = [claims.measure(c, None).p for c in todo]
        verdicts = claims.verify(todo, alpha=alpha)
        steps = np.empty(m)
        steps[np.argsort(raw, kind="stable")] = alpha / (m - np.arange(m))
        for p, step, v in zip(raw, steps, verdicts):
            if abs(v.p - alpha) < 1e-9:  # a tie at the boundary: either reading holds
                continue
            checked += 1
            assert excludes_zero(v.ci) == (v.p < alpha), (raw, v.p, v.ci, v.level)
            assert (v.p < alpha) == (v.verdict in ("supported", "significant, but smaller than claimed",
                                                   "significant, and larger than claimed", "contradicted"))
            assert alpha / m * (1 - 1e-12) <= v.level <= alpha * (1 + 1e-12)
            early += bool(v.p >= alpha and p < step)  # Holm stopped before this claim's own step
    assert checked > 1000 and early > 0


def test_welch_interval_and_detectable_effect():
    w = claims.Welch(0.8, 6.3)
    for level in (0.05, 0.0123, 0.2):
        lo, hi = w.interval(1.0, level)
        assert w.p_value(1.0 - lo) == pytest.approx(level) and w.p_value(hi - 1.0) == pytest.approx(level)
        d = w.mde(level)
        c = sps.t.ppf(1 - level / 2, 6.3)
        power = sps.nct.sf(c, 6.3, d / 0.8) + sps.nct.cdf(-c, 6.3, d / 0.8)
        assert power == pytest.approx(0.8, abs=1e-6)
    big = claims.Welch(1.0, 1e9)  # many df: the normal formula, z_{1 - a/2} + z_power
    assert big.mde(0.05) == pytest.approx(1.959964 + 0.841621, rel=1e-4)
    assert claims.Welch(1.0, math.inf).mde(0.05) == pytest.approx(1.959964 + 0.841621, rel=1e-4)
    assert claims.Welch(0.0, math.inf).interval(2.0, 0.05) == (2.0, 2.0) and claims.Welch(0.0, math.inf).mde(0.05) == 0
    t = sps.ttest_ind_from_stats(85.2, 1.1, 3, 82.73, 1.4, 3, equal_var=False)
    m = claims.measure(claims.parse("d > p on mosi-intra: Non0 Acc-2 +2.47%", claims.Reported(85.2, 1.1, 3, 82.73, 1.4,
                                                                                             3)), None)
    assert m.p == pytest.approx(t.pvalue) and m.variance.p_value(m.diff) == pytest.approx(t.pvalue)


@pytest.mark.parametrize("tail", [" " * 200_000 + "y", "x" + " " * 200_000 + "1 %%", "1 " * 100_000, "x" + "  1" * 100_000])
def test_long_garbage_is_refused_in_linear_time(tail):
    import time

    start = time.perf_counter()
    with pytest.raises(MsabenchError):
        claims.parse("a > b on mosi-intra: " + tail)
    assert time.perf_counter() - start < 5.0  # the metric pattern must not backtrack quadratically over spaces


# ----------------------------------------------------------------------------- what verify prints: 100 columns


def _table_lines(out: str) -> list[str]:
    return [x for x in out.splitlines() if x.startswith("|")]


def _wide_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in x.strip("|").split("|")] for x in _table_lines(out)[2:]]


@pytest.mark.parametrize("args", [
    ["--claim", "almt > cenet on synth-intra: Non0 Acc-2 +2.47%", "--claim", "almt > cenet on synth-intra: MAE -0.09",
     "--claims", ROOT / "docs" / "claims.toml", "--results", ROOT / "leaderboard" / "runs", "--resamples", "200"],
    ["--published", "--claim", "lnln > misa on mosi-intra: Non0_acc_2 +1.06"],
], ids=["results", "published"])
def test_verify_table_fits_100_columns_and_wide_keeps_every_fact(capsys, args):
    from msabench import report

    code, out, err = run_cli(capsys, "verify", *args)
    assert code == 0, err
    assert max(map(len, _table_lines(out))) <= report.WIDTH, out
    code, wide, err = run_cli(capsys, "verify", *args, "--wide")
    assert code == 0, err
    short, full = verify_rows(out), _wide_rows(wide)
    assert len(short) == len(full) >= 4
    for row, (claim, source, claimed, measured, ci, p, verdict, note) in zip(short, full):
        source = "reported numbers" if source == "reported" else source
        assert row["line"].startswith(f"#{row['#']} {claim} (claimed {claimed}; from {source})")
        assert (row["measured"], row["CI (Holm level)"], row["p Holm"]) == (measured, ci, p)
        assert verdict.startswith(row["verdict"]) and (verdict == row["verdict"] or f"; {verdict}" in row["line"])
        assert not note or row["line"].endswith(f"; {note}")


@pytest.mark.parametrize("word", ["supported", "significant, but smaller than claimed",
                                  "significant, and larger than claimed", "contradicted", "not significant",
                                  "refuted (claimed value outside the CI)",
                                  "undefined (the metric is not defined on these predictions)"])
def test_verify_table_fits_100_columns_for_every_verdict(word):
    """The longest cells a claim on results makes: an MAE difference to 3 significant digits, a CI at
    Holm's level for one of three claims, every verdict word."""
    from msabench import report

    mae = claims.parse("a > b on mosi-intra: MAE -0.0987")
    acc = claims.parse("a > b on mosi-intra: Non0 Acc-2 +12.3%")
    verdicts = [claims.Verdict(mae, word, -0.0444, (-0.0712, -0.0175), 0.0123, 0.0456, "results", "a note", 0.05 / 3),
                claims.Verdict(acc, word, 10.34, (-12.25, -11.75), 0.0123, 4.56, "results", "", 0.05 / 3)]
    text = claims.table(verdicts)
    assert max(map(len, _table_lines(text))) <= report.WIDTH, text
    rows = verify_rows(text)
    assert [r["measured"] for r in rows] == ["-0.0444", "+10.3pp"]
    assert rows[0]["CI (Holm level)"] == "[-0.0712, -0.0175] (98.33%)" and rows[0]["line"].endswith("; a note")
