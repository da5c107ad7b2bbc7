"""Packed runs (`msabench runs --pack`): every seed of a (protocol, model) in one Parquet file, read back
exactly as the seed folders were, resumed on, and never written half."""

import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import small_dataset
from msabench import data, executors, protocols, results
from msabench.errors import MsabenchError
from test_results import utterance_table


def _same(a: results.UnitResult, b: results.UnitResult) -> None:
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.conditions, b.conditions)
    assert a.predictions.tobytes() == b.predictions.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    assert a.manifest == b.manifest and str(a.metrics) == str(b.metrics)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Three seeds of `mean` and `text-only` under a small intra protocol over a small generated set."""
    root = tmp_path_factory.mktemp("made")
    protocol = protocols.parse({"name": "synth-intra", "version": 1, "dataset": "synth-mosi", "seeds": [1111, 1112, 1113],
                                "primary_metric": "Non0_acc_2", "missing": {"kind": "intra", "rates": [0.0, 0.5]}},
                               "test")
    ds = small_dataset()
    for model in ("mean", "text-only"):
        executors.run(protocol, model, out=root / "out", dataset=ds)
    return root / "out", protocol, ds


@pytest.fixture()
def copy(made, tmp_path):
    out, protocol, ds = made
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "out", protocol, ds


def test_a_pack_reads_back_every_unit_exactly_and_replaces_the_seed_folders(copy):
    out, protocol, ds = copy
    before = {f.parts[-3:]: results.read_unit(f) for f in results.find_units(out)}
    proc = subprocess.run([sys.executable, "-m", "msabench", "runs", "--pack", "--results", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("packed ") == 2 and "seeds 1111, 1112, 1113" in proc.stdout
    model_dir = out / "synth-intra" / "mean"
    assert sorted(p.name for p in model_dir.iterdir()) == [results.PACK]
    assert set(pq.read_schema(model_dir / results.PACK).names) == {"seed", "condition", "id", "prediction", "label"}
    after = {f.parts[-3:]: results.read_unit(f) for f in results.find_units(out)}
    assert after.keys() == before.keys() and len(after) == 6
    for key in before:
        _same(before[key], after[key])


def test_a_run_resumes_on_a_pack_and_a_new_seed_folder_beside_it_is_folded_in_by_the_next_pack(copy):
    out, protocol, ds = copy
    for seed in ("seed-1112", "seed-1113"):
        shutil.rmtree(out / "synth-intra" / "mean" / seed)
    results.pack(out / "synth-intra" / "mean")
    report = executors.run(protocol, "mean", out=out, dataset=ds)
    assert report.skipped == [1111]  # read from the pack
    assert sorted(p.name for p in (out / "synth-intra" / "mean").iterdir()) == [results.PACK, "seed-1112", "seed-1113"]
    units = results.find_units(out, "synth-intra", "mean")
    assert [u.name for u in units] == ["seed-1111", "seed-1112", "seed-1113"]
    fresh = {u.seed: u for u in report.units}
    assert results.pack(out / "synth-intra" / "mean") == [1111, 1112, 1113]
    assert sorted(p.name for p in (out / "synth-intra" / "mean").iterdir()) == [results.PACK]
    for u in results.find_units(out, "synth-intra", "mean"):
        assert results.read_unit(u).predictions.tobytes() == fresh[int(u.name[5:])].predictions.tobytes()


def test_a_packed_and_an_unpacked_copy_of_one_run_read_as_the_same_run(copy, made, tmp_path):
    out, protocol, ds = copy
    results.pack(out / "synth-intra" / "text-only")
    both = results.find_units([out, made[0]], "synth-intra", "text-only")
    assert [u.name for u in both] == ["seed-1111", "seed-1112", "seed-1113"]
    other = tmp_path / "other" / "synth-intra" / "text-only" / "seed-1112"  # the same unit, one prediction moved
    shutil.copytree(made[0] / "synth-intra" / "text-only" / "seed-1112", other)
    table = pq.read_table(other / "predictions.parquet")
    moved = table.column("prediction").to_numpy().copy()
    moved[5] = np.nextafter(moved[5], np.inf)
    pq.write_table(table.set_column(1, "prediction", pa.array(moved)), other / "predictions.parquet")
    with pytest.raises(MsabenchError, match="seed-1112 is in both .* with different runs"):
        results.find_units([out, tmp_path / "other"], "synth-intra", "text-only")


def test_labels_of_user_supplied_data_are_not_packed(tmp_path):
    path = utterance_table(tmp_path / "mosi-utterance.npz", seed=0)
    ds = data.load("mosi-utt", "features", data=path)
    out = tmp_path / "out"
    executors.run(protocols.load("mosi-utt-inter"), "mean", out=out, dataset=ds, seeds=[1111])
    before = results.read_unit(results.find_units(out)[0])
    results.pack(out / "mosi-utt-inter" / "mean")
    assert "label" not in pq.read_schema(out / "mosi-utt-inter" / "mean" / results.PACK).names
    unit = results.find_units(out)[0]
    assert not results.has_labels(unit)
    with pytest.raises(MsabenchError, match="pass --data"):
        results.read_unit(unit)
    _same(before, results.read_unit(unit, (str(path),)))


def test_an_unreadable_unit_stops_the_pack_before_anything_is_replaced(copy):
    out, protocol, ds = copy
    model_dir = out / "synth-intra" / "mean"
    (model_dir / "seed-1112" / "predictions.parquet").write_bytes(b"not parquet")
    listing = sorted(p.name for p in model_dir.rglob("*"))
    with pytest.raises(MsabenchError, match=r"seed-1112: unreadable result files .*nothing packed"):
        results.pack(model_dir)
    assert sorted(p.name for p in model_dir.rglob("*")) == listing


def test_an_edited_pack_is_refused_in_one_line(copy):
    out, protocol, ds = copy
    model_dir = out / "synth-intra" / "mean"
    results.pack(model_dir)
    pack = model_dir / results.PACK
    pack.write_bytes(pack.read_bytes()[:-100])
    proc = subprocess.run([sys.executable, "-m", "msabench", "runs", "--results", str(out)], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"{pack}: not a readable msabench pack" in proc.stderr


def test_an_upgraded_manifest_is_written_into_the_pack(copy):
    out, protocol, ds = copy
    model_dir = out / "synth-intra" / "mean"
    results.pack(model_dir)
    unit = model_dir / "seed-1112"
    manifest = {**results.read_manifest(unit), "note": "rewritten"}
    results.replace_manifest(unit, manifest)
    assert results.read_manifest(unit)["note"] == "rewritten"
    assert "note" not in results.read_manifest(model_dir / "seed-1111")
    assert not unit.exists() and results.read_unit(unit).manifest["note"] == "rewritten"
