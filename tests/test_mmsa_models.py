"""`mmsa:MODEL`: MMSA's own models, configs and trainers under msabench's protocols (msabench/baselines/mmsa.py)."""

import sys

import numpy as np
import pytest

from msabench import protocols, runner, submission
from msabench.baselines import mmsa as adapter
from msabench.errors import MsabenchError

from conftest import small_dataset

pytest.importorskip("MMSA")

SIZES = (40, 16, 20)


@pytest.fixture(scope="module")
def aligned():
    return small_dataset(sizes=SIZES, text_feature_dim=16, text_len=10, audio_len=10, vision_len=10)


@pytest.fixture(scope="module")
def unaligned():
    return small_dataset(sizes=SIZES, text_feature_dim=16, text_len=10, aligned=False, audio_len=12, vision_len=9,
                         variant="unaligned_50")


def test_spec_names_and_options():
    sub = submission.load("mmsa:lf_dnn")
    assert sub.name == "mmsa-lf_dnn" and sub.options.model == "lf_dnn"
    assert submission.load("mmsa:LF_DNN,threads=1").name == "mmsa-lf_dnn[threads=1]"
    assert submission.load("mmsa:model=tfn").name == "mmsa-tfn"
    assert submission.load("mmsa:tfn").sha256 != sub.sha256
    with pytest.raises(MsabenchError, match="'tfr' is not an MMSA model msabench runs; write mmsa:MODEL with MODEL one of tfn"):
        submission.load("mmsa:tfr")
    with pytest.raises(MsabenchError, match=r"'mctn' is not an MMSA model msabench runs \(not yet: its seq2seq is pinned"):
        submission.load("mmsa:mctn")
    with pytest.raises(MsabenchError, match="has no option 'epochs'"):
        submission.load("mmsa:tfn,epochs=3")
    with pytest.raises(MsabenchError, match="model mmsa: 'no MMSA model'"):
        submission.load("mmsa")


def test_what_cannot_work_is_refused_before_any_work(aligned, unaligned, monkeypatch):
    with pytest.raises(MsabenchError, match=r"mmsa-mfn: MMSA's mfn needs aligned data .* has 10, 12, 9"):
        submission.load("mmsa:mfn").check(unaligned.info, 0)
    short = small_dataset(sizes=SIZES, text_feature_dim=16, text_len=4, audio_len=4, vision_len=4)
    with pytest.raises(MsabenchError, match="mmsa-mult: MMSA's mult convolves each sequence over 5 steps"):
        submission.load("mmsa:mult").check(short.info, 0)
    ids_only = small_dataset(sizes=SIZES)
    with pytest.raises(MsabenchError, match="reads token features .* has token ids only"):
        submission.load("mmsa:lf_dnn").check(ids_only.info, 0)
    with pytest.raises(MsabenchError, match="misa projects 768-d BERT states .* text_encoder=minilm gives 384"):
        submission.load("mmsa:misa").check(ids_only.info, 0)
    with pytest.raises(MsabenchError, match="text_encoder=/nowhere"):
        submission.load("mmsa:self_mm,text_encoder=/nowhere").check(ids_only.info, 0)
    monkeypatch.setitem(sys.modules, "MMSA", None)
    with pytest.raises(MsabenchError, match=r"needs the MMSA package: pip install 'msabench\[mmsa\]'"):
        submission.load("mmsa:lf_dnn").check(aligned.info, 0)


@pytest.mark.parametrize("model, data", [(m, "aligned") for m in adapter.FEATURE_MODELS] +
                         [(m, "unaligned") for m in ("lmf", "lf_dnn", "mult", "self_mm", "mmim")])
def test_every_mmsa_model_trains_with_mmsa_and_predicts_under_masks(model, data, request):
    ds = request.getfixturevalue(data)
    sub = submission.load(f"mmsa:{model},threads=1")
    sub.check(ds.info, 0)
    p = protocols.load("synth-intra")
    unit = runner.run_unit(sub, ds, p, 1111)
    by_rate = unit.predictions.reshape(len(p.conditions), -1)
    assert np.isfinite(by_rate).all()
    assert not np.array_equal(by_rate[0], by_rate[-1])  # the corruption reaches the model
    if model in ("lf_dnn", "mult"):  # same seed, same process: same predictions (two models, for CI time)
        assert np.array_equal(unit.predictions, runner.run_unit(sub, ds, p, 1111).predictions)


@pytest.fixture(scope="module")
def sims():
    """CH-SIMS-shaped: labels in [-1, 1] with unimodal T/A/V labels, token features only."""
    from msabench.data import mmsa as mmsa_files

    from conftest import small_raw

    raw = small_raw(sizes=SIZES, text_feature_dim=16, text_len=10, aligned=False, audio_len=12, vision_len=9)
    rng = np.random.default_rng(0)
    for part in raw.values():
        part["regression_labels"] = np.clip(part["regression_labels"] / 3, -1, 1)
        for m in "TAV":  # each modality's label: the multimodal one, disturbed
            noise = rng.normal(scale=0.3, size=part["regression_labels"].shape)
            part[f"regression_labels_{m}"] = np.clip(part["regression_labels"] + noise, -1, 1).astype(np.float32)
        del part["text_bert"]
    return mmsa_files.from_dict(raw, "sims", "unaligned_39", "generated:sims-shaped test")


@pytest.mark.parametrize("model", adapter.UNIMODAL_MODELS)
def test_multitask_models_train_on_unimodal_labels(model, sims, unaligned):
    with pytest.raises(MsabenchError, match=f"mmsa-{model}: MMSA's {model} trains on unimodal labels too"):
        submission.load(f"mmsa:{model}").check(unaligned.info, 0)
    sub = submission.load(f"mmsa:{model},threads=1")
    sub.check(sims.info, 0)
    p = protocols.parse({"name": "t-sims", "version": 1, "dataset": "sims", "variant": "unaligned_39", "seeds": [1],
                         "primary_metric": "Mult_acc_2", "missing": {"kind": "intra", "rates": [0.0, 0.9]}}, "test")
    unit = runner.run_unit(sub, sims, p, 1)
    by_rate = unit.predictions.reshape(2, -1)
    assert np.isfinite(by_rate).all() and not np.array_equal(by_rate[0], by_rate[1])
    assert set(unit.metrics["conditions"]["r=0"]) == {"Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"}


def test_no_test_sample_reaches_mmsas_trainer(aligned, monkeypatch):
    from MMSA.trains import ATIO

    seen = {}
    real = ATIO.getTrain

    def spy(self, args):
        trainer = real(self, args)
        inner = trainer.do_train

        def do_train(model, loaders, *a, **k):
            seen.update({k2: {i for b in loader for i in b["id"]} for k2, loader in loaders.items()})
            return inner(model, loaders, *a, **k)

        trainer.do_train = do_train
        return trainer

    monkeypatch.setattr(ATIO, "getTrain", spy)
    runner.run_unit(submission.load("mmsa:lf_dnn,threads=1"), aligned, protocols.load("synth-inter"), 1111)
    assert seen["train"] == set(aligned["train"].ids) and seen["valid"] == set(aligned["valid"].ids)
    assert seen["test"] == seen["valid"] and not seen["test"] & set(aligned["test"].ids)
