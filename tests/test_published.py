"""The registry of published results (msabench.published), `msabench published`, `verify --published`
and the leaderboard's "as published, not re-run" tables."""

import math
import re

import pytest

from msabench import claims, leaderboard, metrics, published
from msabench.errors import MsabenchError

from conftest import ROOT, verify_rows, write_file
from test_cli import msabench, one_line_error

FIELD = ROOT.parent / "shared" / "FIELD.md"
NAMES = {"LNLN": "lnln", "ALMT": "almt", "Self-MM": "self-mm", "MISA": "misa", "P-RMF": "p-rmf",
         "TF-Mamba": "tf-mamba", "SemMSA": "semmsa"}


def test_the_shipped_registry_loads_with_its_flags():
    entries = published.load()
    assert {e.protocol for e in entries} == {"mosi-intra", "mosei-intra", "sims-intra"}
    flagged = published.conflicts(entries)
    by_key = {(e.file, e.index): e for e in entries}
    # the two known disagreements are kept (both entries) and flagged, nothing else is
    assert sorted({(by_key[k].method, by_key[k].protocol) for k in flagged}) == [("cenet", "mosi-intra"),
                                                                                 ("misa", "mosi-intra")]
    assert len(flagged) == 4
    tcmr = [e for e in entries if e.selection == "validation"]
    assert sorted(e.method for e in tcmr) == ["lnln", "p-rmf"] and all(e.protocol == "mosi-intra" for e in tcmr)
    assert not any(e.std for e in entries)  # no source in this field publishes seed SDs


@pytest.mark.skipif(not FIELD.exists(), reason="../shared/FIELD.md is not beside the checkout")
def test_registry_numbers_equal_the_field_notes():
    """Every row of FIELD.md section 8's MOSI and MOSEI tables is in the registry, digit for digit."""
    text = FIELD.read_text().split("## 8.")[1]
    columns = ["Mult_acc_7", "Mult_acc_5", ("Non0_acc_2", "Has0_acc_2"), ("Non0_F1_score", "Has0_F1_score"), "MAE",
               "Corr"]
    checked = 0
    for dataset in ("MOSI", "MOSEI"):
        table = text.split(f"| {dataset} |")[1].split("\n\n")[0]
        entries = published.load(protocol=f"{dataset.lower()}-intra")
        for line in table.splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            method = NAMES[cells[0]]
            want = {}
            for col, cell in zip(columns, cells[1:]):
                values = [float(v) for v in cell.split("/")]
                for name, v in zip((col,) if isinstance(col, str) else col, values):
                    want[name] = v
            assert any(all(math.isclose(e.metrics.get(k, math.nan), v) for k, v in want.items())
                       for e in entries if e.method == method and e.selection != "validation"), (dataset, method)
            checked += 1
    assert checked == 14


def test_msabench_published_lists_a_protocol():
    proc = msabench("published", "--protocol", "sims-intra")
    assert proc.returncode == 0, proc.stderr
    assert "sims-intra (as published, not re-run" in proc.stdout and "| lnln " in proc.stdout
    assert "test (protocol flaw)" in proc.stdout and "[C] LNLN's corrigendum" in proc.stdout
    assert "mosi-intra" not in proc.stdout
    one_line_error(msabench("published", "--protocol", "nope"), "nope")


def test_verify_published_says_a_claim_without_sds_cannot_be_tested():
    proc = msabench("verify", "--published", "--claim", "lnln > almt on mosi-intra: Non0_acc_2 +2.15")
    assert proc.returncode == 0, proc.stderr
    rows = verify_rows(proc.stdout)
    assert len(rows) == 2  # LNLN's own row and TCMR's validation-selected re-run
    assert all(r["verdict"] == "cannot be tested from published numbers" for r in rows)
    assert all(r["line"].startswith(f"#{i} lnln > almt on mosi-intra: Non0_acc_2 +2.15 (claimed +2.15pp; from "
                                    "published: lnln ") for i, r in enumerate(rows, 1))
    assert rows[0]["measured"] == "+2.15pp" and (rows[0]["CI (Holm level)"], rows[0]["p Holm"]) == ("-", "-")
    assert "checkpoint chosen on test: lnln, almt" in rows[0]["line"]
    assert "selected differently (validation vs test)" in rows[1]["line"] and rows[1]["measured"] == "-0.4pp"
    one_line_error(msabench("verify", "--published", "--claim", "lnln > tfn on mosi-intra: Non0_acc_2 +2"),
                   "the registry has no Non0_acc_2 for tfn on mosi-intra")
    one_line_error(msabench("verify", "--published", "--claim", "lnln > almt on mosi-intra: Non0_acc_2 +2",
                            "--reported", "1", "1", "3", "1", "1", "3"), "takes neither --reported nor --claims")


REGISTRY = """
protocol = "mosi-intra"

[sources]
X = "a paper that publishes seed SDs"

[[entry]]
method = "a"
paper = "X"
source = "[X]"
selection = "validation"
seeds = [1111, 1112, 1113]
metrics = {{ Non0_acc_2 = {a} }}
std = {{ Non0_acc_2 = 0.8 }}

[[entry]]
method = "b"
paper = "X"
source = "[X]"
selection = "validation"
seeds = [1111, 1112, 1113, 1114, 1115]
metrics = {{ Non0_acc_2 = 70.0 }}
std = {{ Non0_acc_2 = 1.1 }}
"""


def test_verify_published_uses_welch_where_sds_are_published(tmp_path):
    write_file(tmp_path / "reg" / "x.toml", REGISTRY.format(a=73.5))
    entries = published.load(tmp_path / "reg")
    got = published.verify(["a > b on mosi-intra: Non0_acc_2 +3.5"], entries)
    want = claims.verify([claims.parse("a > b on mosi-intra: Non0_acc_2 +3.5", claims.Reported(73.5, 0.8, 3, 70.0, 1.1, 5))])
    assert len(got) == 1 and got[0].verdict == want[0].verdict == "supported"
    assert (got[0].p, got[0].ci) == (want[0].p, want[0].ci) and got[0].source == "published: a [X] vs b [X]"
    proc = msabench("verify", "--published", "--registry", tmp_path / "reg", "--claim", "a > b on mosi-intra: Non0_acc_2 +3.5")
    assert proc.returncode == 0, proc.stderr
    [row] = verify_rows(proc.stdout)
    assert row["verdict"] == "supported" and "(claimed +3.5pp; from published: a [X] vs b [X])" in row["line"]
    write_file(tmp_path / "close" / "x.toml", REGISTRY.format(a=70.5))  # half a point with these SDs: not significant
    close = published.verify(["a > b on mosi-intra: Non0_acc_2 +0.5 points"], published.load(tmp_path / "close"))
    assert close[0].verdict == "not significant" and close[0].p > 0.05


@pytest.mark.parametrize("edit, message", [
    (("selection = \"validation\"", "selection = \"best\"", 1), "entry 1: key 'selection' must be one of test, validation, unknown"),
    (("Non0_acc_2 = 73.5", "Mult_acc_3 = 73.5", 1), "entry 1: key 'metrics': 'Mult_acc_3' is not a metric of this protocol"),
    (("source = \"[X]\"", "source = \"[Y]\"", 1), "entry 1: key 'source' cites [Y], which [sources] does not name"),
    (("method = \"b\"", "methd = \"b\"", 1), "entry 2: unknown key 'methd'"),
    (("protocol = \"mosi-intra\"", "protocol = \"nope\"", 1), "key 'protocol': unknown protocol 'nope'"),
    (("seeds = [1111, 1112, 1113]\n", "seeds = [1111, 1112, 1113]\nper_rate = \"high\"\n", 1), "entry 1: key 'per_rate' must be"),
    (("seeds = [1111, 1112, 1113]\n", "seeds = [1111, 1112, 1113]\nper_rate = { Non0_acc_2 = { \"0.95\" = 50.0 } }\n", 1),
     "entry 1: key 'per_rate.Non0_acc_2': rate '0.95' is not a condition of mosi-intra"),
    (("std = { Non0_acc_2 = 0.8 }", "std = { Non0_acc_2 = -0.8 }", 1), "entry 1: key 'std'"),
])
def test_a_bad_registry_file_is_one_line(tmp_path, edit, message):
    old, new, count = edit
    path = write_file(tmp_path / "reg" / "x.toml", REGISTRY.format(a=73.5).replace(old, new, count))
    with pytest.raises(MsabenchError) as e:
        published.load(tmp_path / "reg")
    assert message in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_per_rate_values_are_read_by_condition():
    lnln = [e for e in published.load(protocol="mosi-intra") if e.method == "lnln" and e.selection == "test"][0]
    assert lnln.per_rate["Non0_acc_2"] == {"r=0": 84.25, "r=0.3": 77.29, "r=0.5": 73.37, "r=0.7": 65.95, "r=0.9": 56.5}


def test_the_leaderboard_shows_published_numbers_apart_from_measured_rows(tmp_path):
    """A protocol with published entries gets its own table below the measured one; its methods are
    never in the ranking, and the test-selection flag travels with them."""
    from test_leaderboard import GOOD

    from conftest import small_dataset
    from msabench import executors, protocols

    data, res = small_dataset(sizes=(30, 10, 20)), tmp_path / "res"
    for model in ("mean", write_file(tmp_path / "good.py", GOOD)):  # measured rows, no training
        executors.run(protocols.load("synth-intra"), model, out=res, dataset=data, seeds=[1111, 1112])
    write_file(tmp_path / "reg" / "x.toml", REGISTRY.format(a=73.5).replace('"mosi-intra"', '"synth-intra"'))
    out = leaderboard.write(res, tmp_path / "lb", published_entries=published.load(tmp_path / "reg"))
    text = out.read_text()
    section = text.split("### synth-intra")[1].split("\n### ")[0]
    ranked, reported = section.split("As published, not re-run")
    assert "| a " not in ranked and "| b " not in ranked
    assert "| a " in reported and "73.50 ± 0.80" in reported and "[X] a paper that publishes seed SDs" in reported
    shipped = leaderboard.write(res, tmp_path / "lb2").read_text()  # the shipped registry: MMSA protocols, no results
    assert "### mosi-intra" in shipped and "No measured results in this leaderboard" in shipped
    assert re.search(r"\| lnln +\| LNLN \(NeurIPS 2024\) +\| test \(protocol flaw\)", shipped)
    assert all(name in metrics.METRICS["mosi"] for name in ("Non0_acc_2", "MAE"))
