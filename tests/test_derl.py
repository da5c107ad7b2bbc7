"""DERL baseline: trains, every switch matters, robust to missing modalities, cached, batch-invariant."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, runner, submission, training
from msabench.baselines import derl

from conftest import inter_protocol, intra_protocol, small_dataset

FAST = "hidden=16,epochs=5"
SEED = 7
SWITCHES = ("routing", "importance_fusion", "orthogonality", "reconstruction",
            "feature_reconstruction", "fused_reconstruction")


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("derl-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSABENCH_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def fitted(data, cache):
    sub = submission.load(f"derl:{FAST}")
    model = sub.build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], SEED)
    return sub, model


def intra(rates=(0.0, 0.5)):
    return intra_protocol(rates, SEED)


def views(split, n=24, seed=3):
    """Clean and LNLN-corrupted tensors of the first n samples, and their labels."""
    idx = np.arange(n)
    clean, _ = masking.corrupt(split, training.complete(split), idx, reveal=False)
    corrupted, _ = masking.corrupt(split, training.augmentation(split, seed, 0.5), idx, reveal=False)
    return training.tensors(clean), training.tensors(corrupted), torch.from_numpy(split.labels[idx].astype(np.float32))


def pair(info, switch, **kw):
    """Nets with the switch on and off, the same seed; the `on` net gets the `off` net's shared weights."""
    opts = derl.DERLOptions(hidden=16, **kw)
    torch.manual_seed(0)
    on = derl.Net(info, opts)
    torch.manual_seed(0)
    off = derl.Net(info, dataclasses.replace(opts, **{switch: False}))
    on.load_state_dict(off.state_dict(), strict=False)
    return on.eval(), off.eval()


def test_training_loss_falls(fitted):
    _, model = fitted
    first, last = model.history[0], model.history[-1]
    assert len(model.history) == 5
    assert {"l1", "orth", "rec_feature", "rec_fused"} <= set(first)
    assert last["train_loss"] < first["train_loss"]
    assert all(np.isfinite(row["train_loss"]) for row in model.history)


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_is_an_option(data, switch):
    sub = submission.load(f"derl:{switch}=off")
    assert getattr(sub.build(data.info).options, switch) is False
    assert getattr(submission.load("derl").build(data.info).options, switch) is True


def test_routing_switch(data):
    on, off = pair(data.info, "routing")
    clean, corrupted, y = views(data["train"])
    assert {k for k, _ in on.named_parameters()} - {k for k, _ in off.named_parameters()} == \
        {"router.weight", "router.bias"}
    with torch.no_grad():
        assert not torch.allclose(on(corrupted).pred, off(corrupted).pred)
        gates = on.encode(corrupted)["gates"]
        assert torch.allclose(gates.sum(1), torch.full((len(y),), 4.0)) and gates.std() > 0
        on.router.weight.zero_(), on.router.bias.zero_()  # uniform gates == routing off
        assert torch.allclose(on(corrupted).pred, off(corrupted).pred, atol=1e-6)


def test_importance_fusion_switch(data):
    on, off = pair(data.info, "importance_fusion")
    clean, corrupted, y = views(data["train"])
    extra = {k for k, _ in on.named_parameters()} - {k for k, _ in off.named_parameters()}
    assert "slot_bias" in extra and any(k.startswith("scorer.") for k in extra)
    with torch.no_grad():
        assert not torch.allclose(on(corrupted).pred, off(corrupted).pred)
        weights = on.encode(corrupted)["weights"]
        assert weights.shape == (len(y), 6) and weights.std() > 0
        on.scorer[-1].weight.zero_(), on.scorer[-1].bias.zero_()  # uniform importance == plain concat
        assert torch.allclose(on(corrupted).pred, off(corrupted).pred, atol=1e-6)


def test_orthogonality_switch(data):
    on, off = pair(data.info, "orthogonality")
    clean, corrupted, y = views(data["train"])
    with torch.no_grad():
        p_on, p_off = on.loss_parts(clean, corrupted, y), off.loss_parts(clean, corrupted, y)
    assert set(p_on) - set(p_off) == {"orth"}
    assert 0 < float(p_on["orth"]) <= 0.1 and torch.equal(p_on["l1"], p_off["l1"])
    # the loss vanishes for uncorrelated features and is maximal for identical ones
    a = torch.randn(256, 8, dtype=torch.float64)
    assert float(derl.cross_correlation_loss(a, a)) > float(derl.cross_correlation_loss(a, torch.randn_like(a))) * 10


@pytest.mark.parametrize("switch,gone", [("reconstruction", {"rec_feature", "rec_fused"}),
                                         ("feature_reconstruction", {"rec_feature"}),
                                         ("fused_reconstruction", {"rec_fused"})])
def test_reconstruction_switches(data, switch, gone):
    on, off = pair(data.info, switch)
    clean, corrupted, y = views(data["train"])
    with torch.no_grad():
        p_on, p_off = on.loss_parts(clean, corrupted, y), off.loss_parts(clean, corrupted, y)
        assert set(p_on) - set(p_off) == gone and all(float(p_on[k]) > 0 for k in gone)
        assert torch.equal(p_on["l1"], p_off["l1"])
        has_decoders = any(k.startswith("decoders.") for k, _ in off.named_parameters())
        assert has_decoders == (switch == "fused_reconstruction")
        # nothing to reconstruct at the fused level when the input is already complete
        assert float(on.loss_parts(clean, clean, y).get("rec_fused", 0.0)) == 0.0


def test_clean_targets_match_a_clean_forward(data):
    net = derl.Net(data.info, derl.DERLOptions(hidden=16)).eval()
    clean, corrupted, y = views(data["train"])
    with torch.no_grad():
        z = net.encode(corrupted)
        target, full = net.clean_targets(clean, corrupted, z), net.encode(clean)
    same = torch.stack([(clean[k] == corrupted[k]).reshape(len(y), -1).all(1) for k in clean]).all(0)
    assert 0 < int(same.sum()) < len(y)  # the views share some rows and differ in others
    assert torch.allclose(target["fused"], full["fused"], atol=1e-5)
    for m in derl.MODS:
        assert torch.allclose(target["pooled"][m], full["pooled"][m], atol=1e-5)


def test_finite_when_whole_modalities_are_missing(fitted, data):
    sub, _ = fitted
    proto = inter_protocol(SEED)
    unit = runner.run_unit(sub, data, proto, SEED)
    assert np.isfinite(unit.predictions).all()
    # and with nothing at all: [CLS] [UNK]... [SEP], zero audio and vision
    _, model = fitted
    split = data["test"]
    none = masking.Observed(*(np.zeros_like(v) for v in masking.valid(split).values()))
    batch, mask = masking.corrupt(split, none, slice(0, 10), reveal=False)
    assert (batch.audio == 0).all() and (batch.vision == 0).all()
    assert np.isfinite(model.predict(batch, mask)).all()


def test_cached_checkpoint_gives_identical_predictions(fitted, data):
    sub, model = fitted
    split = data["test"]
    batch, mask = masking.corrupt(split, training.complete(split), slice(None), reveal=False)
    again = sub.build(data.info)
    msgs = []
    again.log = msgs.append
    again.fit(data["train"], data["valid"], SEED)
    assert any("loaded checkpoint" in m for m in msgs) and again.history == []
    first, second = model.predict(batch, mask), again.predict(batch, mask)
    assert np.array_equal(first, second) and np.std(first) > 0


def test_same_predictions_whatever_the_batch_size(fitted, data):
    sub, _ = fitted
    full = len(data["test"])
    preds = [runner.run_unit(sub, data, intra(), SEED, batch_size=bs).predictions for bs in (1, 7, full)]
    assert np.isfinite(preds[0]).all()
    for p in preds[1:]:
        assert np.array_equal(preds[0], p)
