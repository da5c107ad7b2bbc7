"""Round trips through Hugging Face save_to_disk folders, and every error path's message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, Dataset, Split
from msabench.data.hf import load_folder, save, to_hf
from msabench.errors import MsabenchError

datasets = pytest.importorskip("datasets")

SIZES = {"train": 12, "valid": 5, "test": 7}
L, TA, DA, TV, DV, DT = 8, 6, 3, 7, 4, 5


def make_split(rng, name, n, offset, sims=False):
    lengths = rng.integers(3, L + 1, size=n)
    mask = (np.arange(L)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1000, 30000, size=(n, L)).astype(np.int64)
    ids[:, 0] = CLS_ID
    ids[np.arange(n), lengths - 1] = SEP_ID
    ids[mask == 0] = PAD_ID
    lo = 1.0 if sims else 3.0
    labels = rng.uniform(-lo, lo, size=n).astype(np.float32)
    common = dict(
        name=name,
        ids=np.array([f"vid{offset + i // 3}$_${i % 3 + 1}" for i in range(n)], dtype=str),
        labels=labels,
        text_mask=mask,
        audio=rng.standard_normal((n, TA, DA)).astype(np.float32),
        audio_lengths=rng.integers(0, TA + 1, size=n).astype(np.int64),
        vision=rng.standard_normal((n, TV, DV)).astype(np.float32),
        vision_lengths=rng.integers(1, TV + 1, size=n).astype(np.int64),
        raw_text=np.array([f"sample {offset + i} says ünïcode" for i in range(n)], dtype=str),
    )
    if sims:
        extra = {k: np.round(rng.uniform(-1, 1, size=n), 1).astype(np.float32) for k in "TAV"}
        feats = rng.standard_normal((n, L, DT)).astype(np.float32)
        return Split(text_features=feats, extra_labels=extra, **common)
    return Split(text_ids=ids, **common)


def make_dataset(sims=False, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    splits = {name: make_split(rng, name, n, 100 * k, sims) for k, (name, n) in enumerate(sizes.items())}
    return Dataset(
        name="synth-sims" if sims else "synth-mosi",
        variant="unaligned_50",
        kind="sims" if sims else "mosi",
        splits=splits,
        source="generated:test",
        nonfinite_replaced=3,
    )


def assert_same(a: Dataset, b: Dataset):
    assert (a.name, a.variant, a.kind, a.nonfinite_replaced) == (b.name, b.variant, b.kind, b.nonfinite_replaced)
    assert list(a.splits) == list(b.splits)
    for name in a.splits:
        x, y = a[name].arrays(), b[name].arrays()
        assert sorted(x) == sorted(y), name
        for key in x:
            assert x[key].dtype == y[key].dtype, (name, key, x[key].dtype, y[key].dtype)
            assert x[key].shape == y[key].shape, (name, key)
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}/{key}")
            assert y[key].flags.writeable, (name, key)
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("sims", [False, True])
def test_round_trip_is_bit_exact(tmp_path, sims):
    ds = make_dataset(sims)
    out = save(ds, tmp_path / "data")
    assert out == tmp_path / "data"
    meta = json.loads((out / "msabench.json").read_text())
    assert meta == {"schema": "msabench-1", "name": ds.name, "variant": "unaligned_50", "kind": ds.kind,
                    "source": "generated:test", "nonfinite_replaced": 3}
    back = load_folder(out)
    assert_same(ds, back)
    assert back.source == str(out)
    assert back["train"].text_ids is None if sims else back["train"].text_features is None
    assert sorted(back["test"].extra_labels) == (["A", "T", "V"] if sims else [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left behind


def test_hf_features_are_explicit():
    hf = to_hf(make_dataset(sims=True))
    assert list(hf) == ["train", "valid", "test"]
    f = hf["valid"].features
    assert f["audio"] == datasets.Array2D(shape=(TA, DA), dtype="float32")
    assert f["vision"] == datasets.Array2D(shape=(TV, DV), dtype="float32")
    assert f["text_features"] == datasets.Array2D(shape=(L, DT), dtype="float32")
    assert f["label"] == datasets.Value("float32") and f["label_T"] == datasets.Value("float32")
    assert f["audio_length"] == datasets.Value("int64") and f["id"] == datasets.Value("string")
    assert f["text_mask"] == datasets.Sequence(datasets.Value("int64"))
    assert "text_ids" not in f and hf["valid"].num_rows == 5
    row = hf["train"][0]
    assert row["id"] == "vid0$_$1" and len(row["audio"]) == TA and len(row["audio"][0]) == DA


def test_empty_split_keeps_its_shapes(tmp_path):
    ds = make_dataset(sizes={"train": 4, "valid": 0, "test": 3})
    back = load_folder(save(ds, tmp_path / "d"))
    assert_same(ds, back)


def test_save_into_empty_folder_but_not_over_data(tmp_path):
    ds = make_dataset()
    (tmp_path / "empty").mkdir()
    save(ds, tmp_path / "empty")
    assert load_folder(tmp_path / "empty").fingerprint == ds.fingerprint
    with pytest.raises(MsabenchError, match=str(tmp_path / "empty")):
        save(ds, tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MsabenchError, match="not an empty folder"):
        save(ds, tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]


def _one_line(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


def test_missing_and_foreign_folders(tmp_path):
    with pytest.raises(MsabenchError) as e:
        load_folder(tmp_path / "nope")
    _one_line(e, tmp_path / "nope", "no such folder")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("hello")
    with pytest.raises(MsabenchError) as e:
        load_folder(tmp_path / "junk")
    _one_line(e, tmp_path / "junk", "save_to_disk")
    single = tmp_path / "single"
    to_hf(make_dataset())["train"].save_to_disk(str(single))
    with pytest.raises(MsabenchError) as e:
        load_folder(single)
    _one_line(e, single, "single Dataset")


def test_msabench_json_missing_or_unknown(tmp_path):
    plain = tmp_path / "plain"
    to_hf(make_dataset()).save_to_disk(str(plain))
    with pytest.raises(MsabenchError) as e:
        load_folder(plain)
    _one_line(e, plain / "msabench.json", "missing")
    out = save(make_dataset(), tmp_path / "d")
    meta = json.loads((out / "msabench.json").read_text())
    (out / "msabench.json").write_text(json.dumps({**meta, "schema": "msabench-0"}))
    with pytest.raises(MsabenchError) as e:
        load_folder(out)
    _one_line(e, out / "msabench.json", "unknown schema", "msabench-0")
    (out / "msabench.json").write_text("{not json")
    with pytest.raises(MsabenchError) as e:
        load_folder(out)
    _one_line(e, out / "msabench.json", "JSON")


def _rewrite(tmp_path, edit) -> Path:
    """A msabench folder whose DatasetDict went through `edit(dd)` (what a hand-made folder may hold)."""
    src = save(make_dataset(), tmp_path / "src")
    dd = datasets.load_from_disk(str(src))
    dd = edit(dd)
    out = tmp_path / "edited"
    dd.save_to_disk(str(out))
    shutil.copy(src / "msabench.json", out / "msabench.json")
    return out


def test_required_column_missing(tmp_path):
    def edit(dd):
        dd["valid"] = dd["valid"].remove_columns("audio_length")
        return dd

    out = _rewrite(tmp_path, edit)
    with pytest.raises(MsabenchError) as e:
        load_folder(out)
    _one_line(e, out, "split valid", "column audio_length", "missing")


def test_ragged_rows(tmp_path):
    def edit(dd):
        mask = [list(r) for r in dd["test"].with_format("numpy")["text_mask"]]
        mask[4] = mask[4][:-2]
        dd["test"] = dd["test"].remove_columns("text_mask").add_column("text_mask", mask)
        audio = [np.asarray(r).tolist() for r in dd["train"].with_format("numpy")["audio"]]
        audio[9] = audio[9][:-1]
        feats = datasets.Features({**dd["train"].features, "audio": datasets.Sequence(datasets.Sequence(datasets.Value("float32")))})
        dd["train"] = dd["train"].remove_columns("audio").add_column("audio", audio).cast(feats)
        return dd

    out = _rewrite(tmp_path, edit)
    with pytest.raises(MsabenchError) as e:
        load_folder(out)
    _one_line(e, out, "split train", "column audio", "inconsistent shapes", "row 9")
    dd = datasets.load_from_disk(str(out))
    dd["train"] = datasets.load_from_disk(str(tmp_path / "src"))["train"]
    fixed = tmp_path / "fixed"
    dd.save_to_disk(str(fixed))
    shutil.copy(out / "msabench.json", fixed / "msabench.json")
    with pytest.raises(MsabenchError) as e:
        load_folder(fixed)
    _one_line(e, fixed, "split test", "column text_mask", "inconsistent shapes", "row 4")


def test_wrong_column_type(tmp_path):
    def edit(dd):
        dd["train"] = dd["train"].cast_column("label", datasets.Value("string"))
        return dd

    out = _rewrite(tmp_path, edit)
    with pytest.raises(MsabenchError) as e:
        load_folder(out)
    _one_line(e, out, "split train", "column label", "float32")


def test_load_hub_offline_is_one_line(tmp_path):
    code = (
        "from msabench.data.hf import load_hub\n"
        "from msabench.errors import MsabenchError\n"
        "try:\n    load_hub('msabench-test/no-such-dataset')\n"
        "except MsabenchError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("ERR ")]
    assert len(lines) == 1, (res.stdout, res.stderr)
    assert "msabench-test/no-such-dataset" in lines[0] and "cannot reach the Hub" in lines[0]
    assert "save_to_disk" in lines[0]
