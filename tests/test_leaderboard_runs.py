"""The per-sample results committed in leaderboard/runs: the board is built from them and later runs
resume on them, so each must be whole, made under the shipped protocol and data, and score to the
metrics stored beside it; and none may carry the labels of user-supplied data into the repository."""

import functools
import math
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from msabench import data, protocols, results, runner, submission

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "leaderboard" / "runs"
UNITS = results.find_units(RUNS) if RUNS.is_dir() else []
MOSI_UTT = ROOT.parent / "shared" / "data" / "mosi-utterance.npz"  # the data real-data runs were made on


def generated(manifest: dict) -> bool:
    return manifest["dataset_source"].startswith("generated:")


@functools.cache
def _identity(model: str) -> str | None:
    spec = submission.spec_of(model)
    return None if spec is None else submission.load(spec).sha256


@functools.cache
def _dataset(name: str, variant: str, path: str | None):
    return data.load(name, variant, data=path)


def _same(a: dict, b: dict) -> bool:
    """Equal up to float summation order: numpy's reductions (MAE, Pearson r) take other SIMD paths on
    other CPUs (AVX2 against AVX512), which moves the last bit or two; 1e-13 relative is far below any
    change of a prediction or label and far above those bits."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or math.isclose(a[k], b[k], rel_tol=1e-13, abs_tol=1e-15) for k in a)


def test_the_leaderboard_runs_are_in_the_repository():
    assert UNITS, f"no finished results under {RUNS}"


@pytest.mark.parametrize("folder", UNITS, ids=[str(f.relative_to(RUNS)) for f in UNITS])
def test_a_committed_unit_is_current_and_rescores_to_its_metrics(folder):
    manifest = results.read_manifest(folder)
    own = generated(manifest)
    if not own and not results.has_labels(folder) and not MOSI_UTT.exists():
        pytest.skip(f"its labels are read from the user's data, and {MOSI_UTT} is not here")
    unit = results.read_unit(folder, () if own else (str(MOSI_UTT),))
    protocol = protocols.load(unit.protocol)
    assert manifest["protocol_fingerprint"] == protocol.fingerprint, "made under another version of the protocol"
    ds = _dataset(manifest["dataset"], manifest["dataset_variant"], None if own else str(MOSI_UTT))
    assert manifest["dataset_fingerprint"] == ds.fingerprint, "made from other data"
    assert (folder.parent.name, folder.name) == (unit.model, f"seed-{unit.seed}")
    # keyed by the bundled model's name, VERSION and options, so `make leaderboard` re-uses it; the code that
    # made it is recorded beside (msabench runs --check shows whether it still matches today's)
    assert manifest["submission_sha256"] == _identity(unit.model), "stale: msabench run would re-run it"
    assert len(manifest["code_sha256"]) == 64 and isinstance(manifest["model_version"], int)

    # every condition scores the whole split, in file order
    ids = ds.splits[manifest["split"]].ids
    names = [c.name for c in protocol.conditions]
    assert list(dict.fromkeys(unit.conditions)) == names == manifest["conditions"]
    for name in names:
        assert np.array_equal(unit.ids[unit.conditions == name], ids)
    assert np.isfinite(unit.predictions).all()

    rescored = runner.condition_metrics(unit.predictions, unit.labels, unit.conditions, protocol)
    for name in names:
        assert _same(rescored["conditions"][name], unit.metrics["conditions"][name]), name
    for agg, values in rescored["aggregate"].items():
        assert _same(values, unit.metrics["aggregate"][agg]), agg


def test_no_label_of_user_supplied_data_is_committed():
    listed = subprocess.run(["git", "ls-files", "leaderboard/runs"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = [ROOT / line for line in listed.stdout.splitlines()]
    assert tracked, "leaderboard/runs has no committed file"
    for path in tracked:
        if path.name == results.PACK:
            table = pq.read_table(path)
            for unit in results.find_units(RUNS, path.parent.parent.name, path.parent.name):
                if generated(results.read_manifest(unit)) or "label" not in table.column_names:
                    continue
                mine = table.filter(pc.equal(table.column("seed"), int(unit.name[5:])))
                assert mine.column("label").null_count == mine.num_rows, f"{unit}: labels of user data are committed"
            continue
        manifest = results.read_manifest(path.parent)
        if manifest is None or generated(manifest):
            continue
        assert path.name != "labels.parquet", f"{path}: labels of {manifest['dataset']} are committed"
        if path.name == "predictions.parquet":
            assert "label" not in pq.read_schema(path).names, f"{path}: labels of {manifest['dataset']} are committed"


def test_the_committed_runs_are_packed_one_file_per_protocol_and_model():
    """The repository grows by one file per (protocol, model), not four per seed (msabench runs --pack)."""
    listed = subprocess.run(["git", "ls-files", "leaderboard/runs"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    names = {Path(line).name for line in listed.stdout.splitlines()}
    assert names == {results.PACK}, f"unpacked files committed: {sorted(names - {results.PACK})[:5]}"
