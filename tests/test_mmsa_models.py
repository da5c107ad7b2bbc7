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
def aligned25():
    """TFR-Net attends over time with 25 heads: lengths are multiples of 25."""
    return small_dataset(sizes=SIZES, text_len=25, audio_len=25, vision_len=25)


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
    assert submission.load("mmsa:tfr_net,missing_rate=0.3").options.missing_rate == 0.3
    with pytest.raises(MsabenchError, match="option missing_rate is tfr_net's .* MMSA's lf_dnn has none"):
        submission.load("mmsa:lf_dnn,missing_rate=0.3")
    with pytest.raises(MsabenchError, match=r"missing_rate='1.5' must be a number in \[0, 1\)"):
        submission.load("mmsa:tfr_net,missing_rate=1.5")
    with pytest.raises(MsabenchError, match="has no option 'epochs'"):
        submission.load("mmsa:tfn,epochs=3")
    with pytest.raises(MsabenchError, match="model mmsa: 'no MMSA model'"):
        submission.load("mmsa")


def test_what_cannot_work_is_refused_before_any_work(aligned, unaligned, monkeypatch):
    from dataclasses import replace

    ids_only = small_dataset(sizes=SIZES)
    lengths_10 = dict(sizes=SIZES, text_len=10, audio_len=10, vision_len=10)
    refused = [  # (model spec, data, the line that says why)
        ("mfn", unaligned, r"mmsa-mfn: MMSA's mfn needs aligned data .* has 10, 12, 9"),
        ("mult", small_dataset(sizes=SIZES, text_feature_dim=16, text_len=4, audio_len=4, vision_len=4),
         "mmsa-mult: MMSA's mult convolves each sequence over 5 steps"),
        ("lf_dnn", ids_only, "reads token features .* has token ids only"),
        ("self_mm,text_encoder=/nowhere", ids_only, "text_encoder=/nowhere"),
        ("misa", unaligned, r"mmsa-misa: MMSA's misa reads audio and vision up to each sample's text length .* "
                            "has 10, 12, 9"),
        ("tfr_net", small_dataset(**lengths_10), "mmsa-tfr_net: MMSA's tfr_net attends over time with 25 heads .* "
                                                 "has 10, 10, 10"),
        ("bert_mag", unaligned, "mmsa-bert_mag: MMSA's bert_mag needs aligned data"),
        ("mctn", replace(aligned.info, text_len=1, audio_len=1, vision_len=1, text_feature_dim=24),  # as utterance tables
         "mmsa-mctn: MMSA's mctn needs sequences of at least 2 steps .* has length 1"),
        ("mctn", small_dataset(text_feature_dim=8, **lengths_10),
         "mmsa-mctn: MMSA's mctn translates .* text 8-d, audio 5-d, vision 20-d"),
    ]
    for spec, data, why in refused:
        with pytest.raises(MsabenchError, match=why):
            submission.load(f"mmsa:{spec}").check(getattr(data, "info", data), 0)
    monkeypatch.setitem(sys.modules, "MMSA", None)
    with pytest.raises(MsabenchError, match=r"needs the MMSA package: pip install 'msabench\[mmsa\]'"):
        submission.load("mmsa:lf_dnn").check(aligned.info, 0)


@pytest.mark.parametrize("model, data", [(m, "aligned") for m in adapter.FEATURE_MODELS if m != "mctn"] +
                         [(m, "unaligned") for m in ("lmf", "lf_dnn", "mult", "self_mm", "mmim")] +
                         [("bert_mag", "aligned"), ("misa", "aligned"), ("tfr_net", "aligned25")])
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


def change_config(monkeypatch, model: str, **changes) -> None:
    """MMSA's own config for `model`, with `changes`: the same code path at a CPU test's cost."""
    import MMSA.config

    real = MMSA.config.get_config_regression

    def changed(name, dataset, *a, **k):
        config = real(name, dataset, *a, **k)
        if name == model:
            config.update(changes)
        return config

    monkeypatch.setattr(MMSA.config, "get_config_regression", changed)


@pytest.mark.parametrize("model", adapter.UNIMODAL_MODELS)
def test_multitask_models_train_on_unimodal_labels(model, sims, unaligned, monkeypatch):
    if model == "mtfn":  # MMSA's SIMS config fuses a 257 x 33 x 257 tensor product into 64 units (140M weights,
        # 90 s for 40 samples on a CPU); narrower layers, read through the same config call, keep the code path
        change_config(monkeypatch, "mtfn", hidden_dims=[16, 8, 16], text_out=16)
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


def test_multitask_models_accept_the_shipped_synth_sims_protocols():
    """synth-sims-* are where the multi-task models get rows: their data has T/A/V labels and features."""
    from msabench import data

    info = data.load("synth-sims", protocols.load("synth-sims-intra").variant).info
    for model in adapter.UNIMODAL_MODELS:
        submission.load(f"mmsa:{model}").check(info, 0)
    features = data.load("synth-mosi", protocols.load("synth-features-intra").variant).info
    with pytest.raises(MsabenchError, match="synth-mosi aligned_50_features has none"):
        submission.load("mmsa:mlf_dnn").check(features, 0)


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


def test_tfr_nets_training_corruption_is_mmsas_own_draw(aligned25):
    """TFR-Net's `_m` inputs and masks equal what MMSA's loader (`generate_m`) makes at that rate and seed."""
    from MMSA.data_loader import MMDataset

    part = aligned25["train"]
    model = adapter.MMSAModel(aligned25.info, adapter.Options(model="tfr_net", missing_rate=0.3))
    text = model._text(part)
    ours = model._missing(text, part.audio, part.vision, part.audio_lengths, part.vision_lengths, seed=7)
    text_m, _, _, keep_t = MMDataset.generate_m(None, text[:, 0, :].copy(), text[:, 1, :].copy(), None, 0.3, 7, "text")
    audio_m, _, audio_mask, keep_a = MMDataset.generate_m(None, part.audio, None, part.audio_lengths, 0.3, 8, "audio")
    vision_m, _, _, keep_v = MMDataset.generate_m(None, part.vision, None, part.vision_lengths, 0.3, 9, "vision")
    assert np.array_equal(ours["text_m"][:, 0].numpy(), text_m) and np.array_equal(ours["text_missing_mask"], keep_t)
    assert np.array_equal(ours["audio_m"].numpy(), audio_m) and np.array_equal(ours["audio_missing_mask"], keep_a)
    assert np.array_equal(ours["vision_m"].numpy(), vision_m) and np.array_equal(ours["vision_missing_mask"], keep_v)
    assert np.array_equal(ours["audio_mask"], audio_mask)
    assert 0.2 < 1 - keep_a.sum() / audio_mask.sum() < 0.4  # the rate is what was asked
    assert (ours["text_m"][:, 0].numpy() == adapter.UNK).any()


def test_bert_mag_is_built_from_the_local_folder_and_mmsa_is_left_as_it_was(aligned):
    """MAG-BERT's fixed name reads the folder (its BERT weights are the folder's); MMSA's module is restored."""
    import importlib

    import torch
    from MMSA.models import AMIO
    from transformers import AutoModel

    from msabench.data import pretrained

    module = importlib.import_module("MMSA.models.singleTask.BERT_MAG")
    before = module.MAG_BertForSequenceClassification, module.MAG_BertModel
    model = adapter.MMSAModel(aligned.info, adapter.Options(model="bert_mag"))
    model.args = model._args(adapter.devices.resolve("cpu", "fp32", 1, where="test"))
    with adapter._bert_from("bert_mag", model.args.pretrained):
        net = AMIO(model.args)
    reference = AutoModel.from_pretrained(pretrained.folder("minilm"))
    bert = net.Model.model.bert
    for ours, theirs in [(bert.embeddings.word_embeddings, reference.embeddings.word_embeddings),
                         (bert.encoder.layer[-1].output.dense, reference.encoder.layer[-1].output.dense),
                         (bert.pooler.dense, reference.pooler.dense)]:
        assert torch.equal(ours.weight, theirs.weight)
    assert (module.MAG_BertForSequenceClassification, module.MAG_BertModel) == before


def test_mctn_runs_as_mmsa_runs_it_across_the_samples_of_a_batch(monkeypatch):
    """MMSA 2.2.1's MCTN reads the batch axis as time: what its docstring in mmsa.py says, measured."""
    # at MMSA's lr 1e-4 the validation loss on 16 samples creeps down for about 100 epochs (70 s): what is
    # measured here is how it predicts, so it trains at 1e-3 and stops after 2 epochs without improvement
    change_config(monkeypatch, "mctn", init_lr=1e-3, early_stop=2)
    from dataclasses import replace

    from msabench import masking

    from conftest import intra_protocol

    ds = small_dataset(sizes=SIZES, text_feature_dim=24, text_len=10, audio_len=10, vision_len=10)
    sub = submission.load("mmsa:mctn,threads=1")
    sub.check(ds.info, 0)
    p = intra_protocol(rates=(0.0, 0.9))
    model = sub.build(ds.info)
    runner.fit(model, ds, 1111)
    test = ds["test"]
    observed = masking.observed(p, test, 1111)
    by_rate = runner.predict_conditions(model, test, p, observed, 1111, 64, "mmsa:mctn")
    assert np.isfinite(by_rate).all() and not np.array_equal(by_rate[0], by_rate[1])  # the corruption reaches it
    batch, mask = masking.corrupt(test, observed["r=0"], slice(None), False)
    two = replace(batch, **{f: np.concatenate([getattr(batch, f)] * 2) for f in
                            ("ids", "text_mask", "audio", "audio_lengths", "vision", "vision_lengths", "text_features")})
    whole = model.predict(two, mask)
    assert np.array_equal(whole, model.predict(two, mask))  # deterministic for the same batches
    assert np.array_equal(whole[32:], model.predict(two.rows(slice(32, 40)), mask))  # MMSA's batches of 32
    assert not np.allclose(whole[:20], whole[20:40])  # the same samples, other neighbours: other predictions
    other = replace(batch, text_features=batch.text_features.copy())
    other.text_features[-1] += 1.0  # change the last sample's text only
    assert not np.allclose(model.predict(other, mask)[0], model.predict(batch, mask)[0])


def test_inputs_go_to_the_models_device_and_lengths_stay_on_the_cpu():
    """MMSA's trainers leave lengths on the CPU, where pack_padded_sequence wants them (MMIM on a GPU failed
    every prediction when they were moved); "meta" stands for a device other than the CPU."""
    import torch

    moved = adapter.on_device({"audio": torch.zeros(2, 3), "audio_lengths": torch.tensor([1, 3]),
                               "vision_lengths": torch.tensor([2, 2])}, "meta")
    assert moved["audio"].device.type == "meta"
    assert moved["audio_lengths"].device.type == moved["vision_lengths"].device.type == "cpu"


def test_ops_without_a_deterministic_kernel_are_named_in_the_manifest():
    """On CUDA torch warns (warn_only) where an op has no deterministic kernel; the model collects those
    warnings for its manifest (`compute.nondeterministic_ops`) and passes every other warning on."""
    import warnings

    model = submission.load("mmsa:mmim").build(small_dataset(sizes=SIZES).info)
    with pytest.warns(UserWarning, match="something else"):
        with model._watch():
            warnings.warn("index_add_cuda_ does not have a deterministic implementation, but you set "
                          "'torch.use_deterministic_algorithms(True, warn_only=True)'.", stacklevel=2)
            warnings.warn("Memory Efficient attention defaults to a non-deterministic algorithm. To explicitly "
                          "enable determinism call torch.use_deterministic_algorithms(True, warn_only=False).", stacklevel=2)
            warnings.warn("something else", stacklevel=2)
    assert model.describe_compute()["nondeterministic_ops"] == ["Memory Efficient attention", "index_add_cuda_"]
