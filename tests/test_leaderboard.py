import csv
import json
import os

import numpy as np
import pytest

from msabench import board, executors, leaderboard, protocols
from msabench.errors import MsabenchError

from conftest import small_dataset, write_file

GOOD = """
import numpy as np

class Good:
    name = "good_model"

    def predict(self, batch, mask):
        # the fraction of real (non-[UNK]) tokens times a fixed word signal: a weak but real score
        return (batch.text_ids % 7 - 3.0).mean(1) * (batch.text_ids != 100).mean(1)
"""


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lb")
    data = small_dataset(sizes=(60, 20, 50))
    good = write_file(tmp / "good.py", GOOD)
    p = protocols.load("synth-intra")
    for model in ("mean", good, "text-only:epochs=2", "text-only:epochs=2,augment=off"):
        executors.run(p, model, out=tmp / "results", dataset=data, seeds=[1111, 1112])
    executors.run(protocols.load("synth-inter"), "mean", out=tmp / "results", dataset=data, seeds=[1111])
    return tmp / "results"


def test_leaderboard_tables_are_recomputed_from_results(results_dir, tmp_path):
    path = leaderboard.write(results_dir, tmp_path, command="make leaderboard")
    text = path.read_text()
    umask = os.umask(0)
    os.umask(umask)
    for written in (path, tmp_path / "results.csv", *tmp_path.glob("*.png")):  # as open() would, not 0600
        assert written.stat().st_mode & 0o777 == 0o666 & ~umask, written
    assert "### synth-intra" in text and "### synth-inter" in text and "`make leaderboard`" in text
    assert "good\\_model" in text  # markdown-escaped
    grouped = board.collect(results_dir)
    entries = grouped["synth-intra"]
    order = [e.model for e in board.ranked([e for e in entries if "[" not in e.model], "Non0_acc_2")]
    means = [next(e for e in entries if e.model == m).aggregate("Non0_acc_2")[0] for m in order]
    assert means == sorted(means, reverse=True)
    # the mean ± std in the table is the seeds' mean and sample std of the stored aggregates
    mean_entry = next(e for e in entries if e.model == "mean")
    vals = [u.metrics["aggregate"]["mean"]["MAE"] for u in mean_entry.units]
    assert f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}" in text
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {r["protocol"] for r in rows} == {"synth-intra", "synth-inter"}
    assert all(len(r["protocol_fingerprint"]) == 64 for r in rows)
    data = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(data) == len(rows) and data[0]["Corr"] is None  # the constant model's Corr is undefined


def test_ablation_table_pairs_variant_with_full_model(results_dir, tmp_path):
    text = leaderboard.write(results_dir, tmp_path).read_text()
    assert "Ablations" not in text  # options that are not a bare base model pair with nothing
    grouped = board.collect(results_dir)
    entries = grouped["synth-intra"]
    base = next(e for e in entries if e.model == "text-only[epochs=2]")
    variant = next(e for e in entries if e.model == "text-only[augment=False,epochs=2]")
    renamed = [board.Entry(e.protocol, "text-only", e.units) if e is base else e for e in entries]
    renamed = [board.Entry(e.protocol, "text-only[augment=False]", e.units) if e is variant else e
               for e in renamed]
    table = leaderboard.ablation_table(protocols.load("synth-intra"), renamed)
    delta = np.subtract([u.metrics["aggregate"]["mean"]["Non0_acc_2"] for u in variant.units],
                        [u.metrics["aggregate"]["mean"]["Non0_acc_2"] for u in base.units])
    assert "| Text only w/o augment " in table and f"{100 * delta.mean():+.2f}"[1:] in table  # points


def test_empty_results(tmp_path):
    with pytest.raises(MsabenchError, match="no finished results"):
        leaderboard.write(tmp_path / "none", tmp_path / "out")


def test_results_of_another_protocol_version_are_left_out(results_dir, tmp_path):
    """A protocol file that changed (mosi-utt-intra v1 -> v2) must not rank old results with new ones."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results_dir, copy)
    manifest = copy / "synth-intra" / "mean" / "seed-1112" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["protocol_fingerprint"] = "0" * 64  # made under another version of synth-intra
    manifest.write_text(json.dumps(m))
    text = leaderboard.write(copy, tmp_path / "lb").read_text()
    assert "Left out (made under another version of the protocol file" in text and "synth-intra: 1 result(s)" in text
    rows = list(csv.DictReader((tmp_path / "lb" / "results.csv").open()))
    assert {(r["model"], r["seed"]) for r in rows if r["protocol"] == "synth-intra" and r["model"] == "mean"} == \
        {("mean", "1111")}


def test_models_with_options_are_ranked_and_ablations_are_not(results_dir, tmp_path):
    assert board.is_ablation("prlf[amre=False]") and board.is_ablation("firf[a=False,b=False]")
    assert not board.is_ablation("text-only[text_encoder=minilm]") and not board.is_ablation("prlf")
    assert not board.is_ablation("text-only[augment=False,epochs=2]")  # a switch and a setting: a model
    text = leaderboard.write(results_dir, tmp_path).read_text()
    ranking = next(p for p in text.split("### synth-intra")[1].split("\n\n") if p.startswith("| #"))  # the ranked table
    assert ranking.startswith("| #") and "| Text only \\[epochs=2\\] " in ranking  # display names
    assert "| Mean (constant) " in ranking and "| good\\_model " in ranking


def test_models_missing_some_of_the_protocols_seeds_are_named_not_ranked(results_dir, tmp_path):
    """One unfinished model must not cut every model's shared seeds (and tests) down to its own."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(results_dir, copy)
    p = protocols.load("synth-intra")
    data = small_dataset(sizes=(60, 20, 50))
    for model in ("mean", "text-only:epochs=2"):  # these two now have all of the protocol's seeds
        executors.run(p, model, out=copy, dataset=data, seeds=[s for s in p.seeds if s not in (1111, 1112)])
    entries = [e for e in board.collect(copy)["synth-intra"] if not board.is_ablation(e.model)]
    done, unfinished = board.complete(p, entries)
    assert {e.model for e in done} == {"mean", "text-only[epochs=2]"}
    assert {e.model for e in unfinished} == {"good_model", "text-only[augment=False,epochs=2]"}
    text = leaderboard.write(copy, tmp_path / "lb").read_text()
    section = text.split("### synth-intra")[1].split("### ")[0]
    ranking = next(p for p in section.split("\n\n") if p.startswith("| #"))
    assert "| Mean (constant) " in ranking and "good\\_model" not in ranking
    assert f"on the {len(p.seeds)} seeds every model shares" in section
    assert "not ranked, having only some of the protocol's seeds" in section
    assert "good\\_model (seeds 1111, 1112)" in section
    # with no model complete (the module's results: seeds 1111 and 1112 only), nothing is left out
    assert board.complete(p, [e for e in board.collect(results_dir)["synth-intra"]])[1] == []
