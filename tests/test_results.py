"""Results shared without the data's labels: the labels come back from the user's data file, and only
from the file the results were made on."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from msabench import board, data, executors, protocols, results
from msabench.errors import MsabenchError


def utterance_table(path, seed):
    """A small file in the layout of mosi-utterance.npz: 10 videos of 4 clips, 3 of them test videos."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"vid{v:02d}_{c}" for v in range(10) for c in range(1, 5)])
    n = len(ids)
    np.savez(path, ids=ids, label=rng.uniform(-3, 3, n).astype(np.float32),
             text=rng.normal(size=(n, 8)).astype(np.float32), audio=rng.normal(size=(n, 5)).astype(np.float32),
             video=rng.normal(size=(n, 6)).astype(np.float32),
             split_bclstm=np.array(["test" if i < 12 else "train" for i in range(n)]),
             text_raw=np.array(["GOOD MOVIE"] * n))
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A run of `mean` on mosi-utt-inter, with its labels.parquet removed as when it is shared."""
    root = tmp_path_factory.mktemp("shared")
    path = utterance_table(root / "mosi-utterance.npz", seed=0)
    ds = data.load("mosi-utt", "features", data=path)
    out = root / "out"
    executors.run(protocols.load("mosi-utt-inter"), "mean", out=out, dataset=ds)
    folders = results.find_units(out)
    with_labels = [results.read_unit(f) for f in folders]
    for f in folders:
        (f / "labels.parquet").unlink()
    return path, ds, out, folders, with_labels


def test_labels_are_stored_apart_from_the_predictions(tmp_path):
    path = utterance_table(tmp_path / "t.npz", seed=0)
    ds = data.load("mosi-utt", "features", data=path)
    executors.run(protocols.load("mosi-utt-inter"), "mean", out=tmp_path / "out", dataset=ds, seeds=[1111])
    folder = results.find_units(tmp_path / "out")[0]
    assert pq.read_schema(folder / "predictions.parquet").names == ["id", "prediction", "condition", "seed"]
    labels = pq.read_table(folder / "labels.parquet")
    assert labels.column("id").to_pylist() == ds["test"].ids.tolist()
    assert np.array_equal(labels.column("label").to_numpy(), ds["test"].labels.astype(np.float64))


def test_results_without_labels_read_them_from_their_data_file(shared):
    path, ds, out, folders, with_labels = shared
    for folder, before in zip(folders, with_labels):
        with pytest.raises(MsabenchError, match="its labels are not stored with it .* pass --data"):
            results.read_unit(folder)
        again = results.read_unit(folder, (str(path),))
        assert np.array_equal(again.labels, before.labels) and np.array_equal(again.predictions, before.predictions)
        assert np.array_equal(again.ids, before.ids)
    entries = board.collect(out, (str(path),))["mosi-utt-inter"]
    assert [len(e.units) for e in entries] == [3]


def test_a_run_resumes_on_results_shared_without_labels(shared):
    """`msabench run --data FILE` over a results folder whose units came without labels (the committed
    leaderboard/runs) re-uses them, with the labels of the data it was given; nothing is retrained."""
    path, ds, out, folders, with_labels = shared
    report = executors.run(protocols.load("mosi-utt-inter"), "mean", out=out, dataset=ds)
    assert report.skipped == [1111, 1112, 1113]
    for unit, before in zip(report.units, with_labels):
        assert np.array_equal(unit.labels, before.labels) and np.array_equal(unit.predictions, before.predictions)
    assert not any((f / "labels.parquet").exists() for f in folders)


def test_labels_come_only_from_the_data_the_results_were_made_on(shared, tmp_path):
    path, ds, out, folders, _ = shared
    other = utterance_table(tmp_path / "other.npz", seed=1)  # same ids and layout, other labels
    with pytest.raises(MsabenchError, match=r"none of the data given is the mosi-utt features it was made on .*"
                                            r"other\.npz: another dataset"):
        results.read_unit(folders[0], (str(other),))
    with pytest.raises(MsabenchError, match="feature table"):
        results.read_unit(folders[0], (str(tmp_path / "x.pkl"),))
    # the right file among others is found
    assert results.read_unit(folders[0], (str(other), str(path))).labels.size
