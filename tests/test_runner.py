import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from msabench import executors, metrics, protocols, results, runner, submission
from msabench.errors import MsabenchError
from msabench.interface import Batch

from conftest import ROOT, small_dataset, write_file

RIDGE = """
import numpy as np

def features(batch):
    t = np.stack([(batch.text_ids == w).sum(1) for w in (100,)], 1)
    L = batch.text_mask.sum(1, keepdims=True)
    a = batch.audio.sum(1) / np.maximum(batch.audio_lengths, 1)[:, None]
    v = batch.vision.sum(1) / np.maximum(batch.vision_lengths, 1)[:, None]
    return np.concatenate([t / L, a, v, np.ones((len(batch), 1))], 1).astype(np.float64)

class Ridge:
    name = "ridge"

    def fit(self, train, valid, seed):
        from msabench.interface import Batch
        b = Batch(ids=train.ids, text_mask=train.text_mask, audio=train.audio, audio_lengths=train.audio_lengths,
                  vision=train.vision, vision_lengths=train.vision_lengths, text_ids=train.text_ids)
        x = features(b)
        self.w = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ train.labels)

    def predict(self, batch, mask):
        # row-wise multiply-and-sum, not a BLAS product, whose blocking depends on the batch size
        return (features(batch) * self.w).sum(1)
"""


def intra(seeds=(1, 2), rates=(0.0, 0.5, 0.9)):
    return protocols.parse({"name": "t-intra", "version": 1, "dataset": "synth-mosi", "seeds": list(seeds),
                            "primary_metric": "Non0_acc_2", "aggregation": ["mean", "area"],
                            "missing": {"kind": "intra", "rates": list(rates)}}, "test")


@pytest.fixture
def ridge(tmp_path):
    return write_file(tmp_path / "ridge.py", RIDGE)


def test_run_writes_typed_results(tmp_path, ridge, dataset):
    p = intra()
    rep = executors.run(p, ridge, out=tmp_path / "out", dataset=dataset)
    assert [u.seed for u in rep.units] == [1, 2] and rep.skipped == []
    folder = tmp_path / "out" / "t-intra" / "ridge" / "seed-1"
    table = pq.read_table(folder / "predictions.parquet")
    assert table.column_names == ["id", "prediction", "condition", "seed"]
    assert table.num_rows == 3 * len(dataset["test"])
    stored_labels = pq.read_table(folder / "labels.parquet")
    assert stored_labels.column("id").to_pylist() == dataset["test"].ids.tolist()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["protocol_fingerprint"] == p.fingerprint
    assert manifest["dataset_fingerprint"] == dataset.fingerprint
    assert len(manifest["submission_sha256"]) == 64 and len(manifest["masks_fingerprint"]) == 64
    stored = json.loads((folder / "metrics.json").read_text())
    pred = table.column("prediction").to_numpy()
    label = np.tile(stored_labels.column("label").to_numpy(), 3)  # conditions stacked, samples in file order
    cond = table.column("condition").to_numpy(zero_copy_only=False)
    again = metrics.compute(pred[cond == "r=0.5"], label[cond == "r=0.5"])
    assert stored["conditions"]["r=0.5"]["MAE"] == pytest.approx(again["MAE"], abs=0)
    levels = [0.0, 0.5, 0.9]
    vals = [stored["conditions"][f"r={r:g}"]["Has0_acc_2"] for r in levels]
    assert stored["aggregate"]["mean"]["Has0_acc_2"] == pytest.approx(np.mean(vals))
    assert stored["aggregate"]["area"]["Has0_acc_2"] == pytest.approx(0.25 * (vals[0] + vals[1]) + 0.2 * (vals[1] + vals[2]))


def test_same_predictions_whatever_the_batch_size(tmp_path, ridge, dataset):
    p = intra(seeds=(1,))
    preds = []
    for bs in (1, 7, 64, 1000):
        u = runner.run_unit(submission.load(ridge), dataset, p, 1, batch_size=bs)
        preds.append(u.predictions)
    for other in preds[1:]:
        assert np.array_equal(preds[0], other)


def test_labels_never_reach_the_model(tmp_path, dataset):
    spy = write_file(tmp_path / "spy.py", """
        import numpy as np
        SEEN = {}

        class Spy:
            def fit(self, train, valid, seed):
                SEEN["fit"] = (train.name, valid.name, seed)

            def predict(self, batch, mask):
                SEEN.setdefault("ids", []).extend(batch.ids.tolist())
                return batch.audio.sum((1, 2)) + batch.text_ids.sum(1)
        """)
    from msabench import submission

    sub = submission.load(spy)
    p = intra(seeds=(1,))
    base = runner.run_unit(sub, dataset, p, 1)
    # shuffled test labels: identical predictions, so nothing the model saw depended on them
    test = dataset["test"]
    shuffled = dataclasses.replace(test, labels=np.random.default_rng(0).permutation(test.labels))
    other = dataclasses.replace(dataset, splits={**dataset.splits, "test": shuffled})
    assert np.array_equal(base.predictions, runner.run_unit(sub, other, p, 1).predictions)
    import sys
    seen = sys.modules[f"msabench_submission_{sub.sha256[:16]}"].SEEN
    assert seen["fit"] == ("train", "valid", 1)
    assert set(seen["ids"]) == set(test.ids.tolist())
    assert not any("label" in f.name for f in dataclasses.fields(Batch))


def test_rerun_skips_finished_work_and_redoes_stale(tmp_path, ridge, dataset):
    out = tmp_path / "out"
    executors.run(intra(), ridge, out=out, dataset=dataset)
    manifest = out / "t-intra" / "ridge" / "seed-1" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    rep = executors.run(intra(), ridge, out=out, dataset=dataset)
    assert rep.skipped == [1, 2] and manifest.stat().st_mtime_ns == before
    ridge.write_text(ridge.read_text() + "\n# edited\n")
    rep = executors.run(intra(), ridge, out=out, dataset=dataset, seeds=[1])
    assert rep.skipped == [] and manifest.stat().st_mtime_ns != before


def test_failure_mid_run_keeps_finished_seeds_only(tmp_path, dataset):
    flaky = write_file(tmp_path / "flaky.py", """
        import numpy as np

        class Flaky:
            def fit(self, train, valid, seed):
                self.seed = seed

            def predict(self, batch, mask):
                if self.seed == 2:
                    raise RuntimeError("out of memory")
                return np.zeros(len(batch))
        """)
    out = tmp_path / "out"
    with pytest.raises(MsabenchError, match="seed 2.*predict raised RuntimeError: out of memory \\(line 10\\)"):
        executors.run(intra(), flaky, out=out, dataset=dataset)
    folder = out / "t-intra" / "flaky"
    assert sorted(p.name for p in folder.iterdir()) == ["seed-1"]
    assert results.is_current(folder / "seed-1", results.read_manifest(folder / "seed-1"))


def test_seeds_must_belong_to_the_protocol(tmp_path, ridge, dataset):
    """The API and the CLI take the same seeds: those listed, and the consecutive integers after them."""
    with pytest.raises(MsabenchError, match="seed 0 is not one of the seeds of t-intra"):
        executors.run(intra(), ridge, out=tmp_path, dataset=dataset, seeds=[0])


def test_dataset_must_match_protocol(tmp_path, ridge, unaligned):
    with pytest.raises(MsabenchError, match="is for synth-mosi aligned_50"):
        executors.run(intra(), ridge, out=tmp_path, dataset=unaligned)


BAD = {
    "syntax": ("def build(info:\n", "syntax error"),
    "import": ("import not_a_module_xyz\n", "importing the submission failed: ModuleNotFoundError"),
    "nobuild": ("x = 1\n", "defines neither build(info) nor a model class"),
    "nopredict": ("def build(info):\n    return object()\n", "has no predict(batch, mask)"),
    "buildraises": ("def build(info):\n    raise ValueError('no')\n", "build(info) raised ValueError: no (line 2)"),
    "fitraises": ("class M:\n    def fit(self, t, v, s):\n        1/0\n    def predict(self, b, m):\n        return b.ids\n",
                  "fit(train, valid, seed=1) raised ZeroDivisionError"),
    "shape": ("import numpy as np\nclass M:\n    def predict(self, b, m):\n        return np.zeros((len(b), 2))\n",
              "predict returned shape"),
    "nan": ("import numpy as np\nclass M:\n    def predict(self, b, m):\n        x = np.zeros(len(b))\n        x[3] = np.nan\n        return x\n",
            "predict returned nan for sample"),
    "inf": ("import torch\nclass M:\n    def predict(self, b, m):\n        return torch.full((len(b),), float('inf'))\n",
            "predict returned inf"),
    "strings": ("class M:\n    def predict(self, b, m):\n        return b.ids\n", "not numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_submissions(tmp_path, dataset, case):
    code, needle = BAD[case]
    path = write_file(tmp_path / f"{case}.py", code)
    out = tmp_path / "out"
    with pytest.raises(MsabenchError) as e:
        executors.run(intra(seeds=(1,)), path, out=out, dataset=dataset)
    assert needle in str(e.value) and str(path.name) in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


def test_missing_submission(tmp_path):
    with pytest.raises(MsabenchError, match="is neither a file nor a bundled model; bundled models: "):
        executors.run(intra(), "nosuchmodel", out=tmp_path)


def test_example_submission_is_batch_size_invariant_end_to_end(tmp_path):
    data = small_dataset(sizes=(200, 60, 90))
    sub = submission.load(ROOT / "submissions" / "example.py")
    p = intra(seeds=(3,))
    runs = [runner.run_unit(sub, data, p, 3, batch_size=bs).predictions for bs in (1, 16, 90)]
    assert runs[0].dtype == np.float64 and np.isfinite(runs[0]).all()
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])
    assert np.unique(runs[0]).size > 10  # a real model, not a constant


PREDICT = "    def predict(self, batch, mask):\n        return np.zeros(len(batch.ids))\n"
NAME_FORMS = {  # file text -> the name its results are stored under (None: refused when built)
    "lone class, no name": ("class M:\n" + PREDICT, "{stem}"),
    "lone class, class attribute": ("class M:\n    name = 'mymodel'\n" + PREDICT, "mymodel"),
    "build + class attribute": ("class M:\n    name = 'mymodel'\n" + PREDICT + "\ndef build(info):\n    return M()\n",
                                "mymodel"),
    "build + class attribute, helper classes": (
        "class Net:\n    pass\n\nclass M:\n    name = 'mymodel'\n" + PREDICT + "\ndef build(info):\n    return M()\n",
        "mymodel"),
    "module NAME": ("NAME = 'mymodel'\n\nclass M:\n" + PREDICT, "mymodel"),
    "module NAME wins over a class attribute": (
        "NAME = 'mymodel'\n\nclass M:\n    name = 'other'\n" + PREDICT + "\ndef build(info):\n    return M()\n",
        None),  # the built model then calls itself 'other': refused, NAME is what results are stored under
    "build + instance attribute equal to the file name": (
        "class M:\n    def __init__(self):\n        self.name = '{stem}'\n" + PREDICT + "\ndef build(info):\n    return M()\n",
        "{stem}"),
    "build + instance attribute": (
        "class M:\n    def __init__(self):\n        self.name = 'mymodel'\n" + PREDICT + "\ndef build(info):\n    return M()\n",
        None),
}


@pytest.mark.parametrize("form", sorted(NAME_FORMS))
def test_name_contract_in_every_form(tmp_path, dataset, form):
    """One precedence (module NAME, the model class's name attribute, the file name), fixed before anything
    runs, the same whether the file is imported here or probed in a worker; a different name found only on
    the built model is refused in one line, never silently ignored."""
    text, want = NAME_FORMS[form]
    path = write_file(tmp_path / "sub_file.py", "import numpy as np\n\n" + text.replace("{stem}", "sub_file"))
    declared = submission.load(path).name
    assert submission.probe(path).name == declared
    out = tmp_path / "out"
    if want is None:
        with pytest.raises(MsabenchError, match=f"the model built names itself '.*', but its results are stored "
                                                f"as '{declared}'.*set NAME ="):
            executors.run(intra(seeds=(1,)), path, out=out, dataset=dataset)
        assert not out.exists()
        return
    want = want.replace("{stem}", "sub_file")
    assert declared == want
    rep = executors.run(intra(seeds=(1,)), path, out=out, dataset=dataset)
    assert rep.model == want and [p.name for p in (out / "t-intra").iterdir()] == [want]


def test_worker_process_and_in_process_give_the_same_bits(tmp_path):
    """Isolation changes where a job runs, not what it computes: the example submission (torch, trained)
    gives bit-identical predictions in the worker process and in this one, at equal threads."""
    data = small_dataset(sizes=(120, 40, 60))
    p = intra(seeds=(1, 2))
    runs = {}
    for isolate in (True, False):
        rep = executors.run(p, ROOT / "submissions" / "example.py", out=tmp_path / str(isolate), dataset=data,
                            executor=executors.SerialExecutor(1, isolate=isolate))
        runs[isolate] = [u.predictions for u in rep.units]
    assert len(runs[True]) == 2 and all(np.array_equal(a, b) for a, b in zip(runs[True], runs[False]))
    assert np.unique(runs[True][0]).size > 10


def test_the_notebook_api_runs_a_grid_and_returns_a_frame(tmp_path, ridge, dataset):
    """msabench.run is the orchestrator the CLI calls: several protocols and models, one report, a DataFrame."""
    import msabench

    inter = dataclasses.replace(protocols.load("synth-inter"), seeds=(1, 2))
    rep = msabench.run([intra(), inter, intra()], ["mean", ridge], out=tmp_path, dataset=dataset, seeds=[1])
    assert [p.name for p in rep.protocols] == ["t-intra", "synth-inter"]  # the same protocol twice runs once
    frame = rep.frame()
    assert len(frame) == 4 and set(frame["model"]) == {"mean", rep.models[1]} and not frame["reused"].any()
    for u in rep.units:
        row = frame[(frame.protocol == u.protocol) & (frame.model == u.model) & (frame.seed == u.seed)]
        assert row["Non0_acc_2"].item() == u.metrics["aggregate"]["mean"]["Non0_acc_2"]
        assert row["MAE (area)"].notna().item() == ("area" in u.metrics["aggregate"])
    again = msabench.run([intra(), inter], ["mean", ridge], out=tmp_path, dataset=dataset, seeds=[1])
    assert again.frame()["reused"].all() and again.jobs == 0
    with pytest.raises(MsabenchError, match="both define protocol 't-intra'"):
        msabench.run([intra(), intra(rates=(0.0, 0.2))], "mean", out=tmp_path, dataset=dataset)
