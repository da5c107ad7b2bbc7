"""The `prlf` baseline: learning, switches, missing modalities, cache, batch-size invariance."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, runner, submission, training
from msabench.baselines import prlf
from msabench.data.core import UNK_ID

from conftest import inter_protocol, intra_protocol, small_dataset

SPEC = "prlf:epochs=2,hidden=32"
SWITCHES = ("amre", "prog_interact", "align_loss", "unimodal_heads")


def intra(rates=(0.0, 0.5)):
    return intra_protocol(rates)


def inter():
    return inter_protocol()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with training.one_thread():  # the machine is shared: no spinning intra-op threads
        yield


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


@pytest.fixture(scope="module")
def fitted(data):
    model = submission.load(SPEC).build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], 1)
    return model


def batch_of(split, n=16, rows=None):
    rows = slice(0, n) if rows is None else rows
    b, _ = masking.corrupt(split, training.complete(split), rows, reveal=False)
    return training.tensors(b), torch.from_numpy(split.labels[rows].astype(np.float32))


def net_for(info, **kw):
    torch.manual_seed(0)
    net = prlf.Net(info, prlf.PRLFOptions(hidden=32, dropout=0.0, **kw))
    return net.eval()


def test_training_loss_falls(data, fitted):
    h = fitted.history
    assert len(h) == 2 and h[-1]["train_loss"] < h[0]["train_loss"]
    assert {"l1", "unimodal", "align"} <= set(h[0])
    # and a few optimizer steps on one batch clearly reduce every part that is trained
    net = net_for(data.info).train()
    x, y = batch_of(data["train"], 32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, parts = net.training_loss(x, x, y)
        first = first or {k: float(v) for k, v in parts.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = net.training_loss(x, x, y)
    assert float(last["l1"]) < 0.7 * first["l1"]
    assert float(last["unimodal"]) < first["unimodal"]


@pytest.mark.parametrize("switch", SWITCHES + ("hard_dominant",))
def test_each_switch_is_accepted_and_changes_the_model(data, switch):
    value = "on" if switch == "hard_dominant" else "off"
    sub = submission.load(f"prlf:{switch}={value}")
    assert sub.name == f"prlf[{switch}={value == 'on'}]" and sub.sha256 != submission.load("prlf").sha256
    assert getattr(sub.build(data.info).options, switch) is (value == "on")
    x, y = batch_of(data["train"])
    base, other = net_for(data.info), net_for(data.info, **{switch: value == "on"})
    with torch.no_grad():
        b_out, o_out = base.run(x), other.run(x)
        b_loss, b_parts = base.training_loss(x, x, y)
        o_loss, o_parts = other.training_loss(x, x, y)
    assert not torch.equal(b_loss, o_loss)
    names = {n for n, _ in base.named_parameters()}
    other_names = {n for n, _ in other.named_parameters()}
    if switch == "amre":  # uniform weights, no learned reliability mixing
        assert torch.equal(o_out["alpha"], torch.full_like(o_out["alpha"], 1 / 3))
        assert b_out["alpha"].std(0).sum() > 0  # per-sample reliability
        assert "beta" in names and "beta" not in other_names
        assert not torch.equal(b_out["pred"], o_out["pred"])
    elif switch == "prog_interact":  # no rounds: fusion of the pooled encodings
        assert len(b_out["stages"]) == 3 and len(o_out["stages"]) == 1
        assert any(n.startswith("rounds.") for n in names) and not any(n.startswith("rounds.") for n in other_names)
        assert not torch.equal(b_out["pred"], o_out["pred"])
    elif switch == "align_loss":
        assert "align" in b_parts and "align" not in o_parts and float(b_parts["align"]) > 0
        assert torch.equal(b_out["pred"], o_out["pred"])
    elif switch == "unimodal_heads":
        assert "unimodal" in b_parts and "unimodal" not in o_parts and float(b_parts["unimodal"]) > 0
    else:  # hard_dominant: one anchor per sample, left unchanged by the rounds
        anchor = o_out["anchor"]
        assert torch.equal(anchor, torch.nn.functional.one_hot(anchor.argmax(-1), 3).to(anchor.dtype))
        assert not torch.equal(b_out["pred"], o_out["pred"])
        dom = anchor.argmax(-1)
        rows = torch.arange(len(dom))
        start = [torch.stack(s, 1)[rows, dom] for s in o_out["stages"]]
        assert torch.allclose(start[0], start[-1], atol=1e-5)


def test_reliability_prefers_the_confident_modality(data):
    net = net_for(data.info)
    mu = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.05, 1.0]])
    b = torch.tensor([[0.2, 2.0, 0.5], [0.5, 0.5, 0.5]])
    alpha, conf, log_fisher = net.reliability(mu, b)
    assert alpha[0, 0] > alpha[0, 2] > alpha[0, 1]  # Fisher: a small predicted scale wins
    assert alpha[1, 1] < alpha[1, 0] and alpha[1, 0] == alpha[1, 2]  # confidence: an undecided polarity loses
    assert torch.allclose(alpha.sum(-1), torch.ones(2))
    assert torch.allclose(log_fisher, -2 * torch.log(b))


def test_finite_when_whole_modalities_are_missing(data, fitted):
    unit = runner.run_unit(submission.load(SPEC), data, inter(), 1)
    assert np.isfinite(unit.predictions).all()
    by_set = {c: unit.predictions[unit.conditions == c] for c in ("T", "A", "V", "TAV")}
    assert not np.array_equal(by_set["T"], by_set["TAV"])  # the missing modalities matter
    # and with every modality gone at once (all [UNK] text, zero frames), for both variants of the net
    test = data["test"]
    b, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    ids = np.where(b.text_mask > 0, UNK_ID, 0)
    empty = dataclasses.replace(b, text_ids=ids, audio=np.zeros_like(b.audio), vision=np.zeros_like(b.vision))
    assert np.isfinite(fitted.predict(empty, mask)).all()
    hard = net_for(data.info, hard_dominant=True).double()
    with torch.no_grad():
        assert torch.isfinite(hard(training.tensors(empty, torch.float64)).pred).all()


def test_cached_checkpoint_gives_identical_predictions(data, fitted):
    test = data["test"]
    b, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    first = fitted.predict(b, mask)
    logs = []
    again = submission.load(SPEC).build(data.info)
    again.log = logs.append
    again.fit(data["train"], data["valid"], 1)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(first, again.predict(b, mask))
    other_seed = submission.load(SPEC).build(data.info)
    other_seed.log = lambda m: None
    other_seed.fit(data["train"], data["valid"], 2)
    assert not np.array_equal(first, other_seed.predict(b, mask))


def test_same_predictions_whatever_the_batch_size(data, fitted):
    p = intra()
    preds = [runner.run_unit(submission.load(SPEC), data, p, 1, batch_size=bs).predictions
             for bs in (1, 7, len(data["test"]))]
    assert np.isfinite(preds[0]).all()
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
