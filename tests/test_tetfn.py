"""The `tetfn` baseline: learning, switches, text enhancement, ULGM, missing modalities, cache, exactness."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, protocols, runner, submission, training
from msabench.baselines import tetfn
from msabench.data import load
from msabench.data.core import UNK_ID
from msabench.errors import MsabenchError

from conftest import inter_protocol, intra_protocol, small_dataset

SPEC = "tetfn:epochs=5,hidden=32,lr=0.003"
SWITCHES = ("text_enhanced", "unimodal_labels", "label_generation")


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


def intra(rates=(0.0, 0.9)):
    return intra_protocol(rates)


def batch_of(split, n=32, obs=None):
    rows = np.arange(n)
    b, _ = masking.corrupt(split, obs or training.complete(split), rows, reveal=False)
    return training.tensors(b), torch.from_numpy(split.labels[rows].astype(np.float32))


def net_for(info, **kw):
    torch.manual_seed(0)
    return tetfn.Net(info, tetfn.TETFNOptions(hidden=32, dropout=0.0, **kw)).eval()


def test_training_loss_falls(data, fitted):
    h = fitted.history
    assert len(h) == 5 and h[-1]["train_loss"] < 0.9 * h[0]["train_loss"] and h[-1]["l1"] < h[0]["l1"]
    assert {"l1", "uni_T", "uni_A", "uni_V"} <= set(h[0])
    assert all(np.isfinite(row[k]) for row in h for k in ("train_loss", "l1", "uni_T", "uni_A", "uni_V"))
    # and a few optimizer steps on one batch clearly reduce the task loss
    net = net_for(data.info).train()
    x, y = batch_of(data["train"])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(20):
        loss, parts = net.training_loss(x, x, y)
        assert all(torch.isfinite(v) for v in parts.values())
        first = first or float(parts["l1"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(net.training_loss(x, x, y)[1]["l1"]) < 0.7 * first


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_is_accepted_and_changes_the_model(data, switch):
    sub = submission.load(f"tetfn:{switch}=off")
    assert sub.name == f"tetfn[{switch}=False]" and sub.sha256 != submission.load("tetfn").sha256
    assert getattr(sub.build(data.info).options, switch) is False
    x, y = batch_of(data["train"])
    on, off = net_for(data.info), net_for(data.info, **{switch: False})
    names_on, names_off = set(on.state_dict()), set(off.state_dict())
    with torch.no_grad():
        p_on, p_off = on(x).pred, off(x).pred
        o_on, o_off = on.run(x), off.run(x)
        parts_on, parts_off = on.train().loss_parts(x, x, y), off.train().loss_parts(x, x, y)
    assert not torch.equal(sum(parts_on.values()), sum(parts_off.values()))
    if switch == "text_enhanced":
        assert any(n.startswith("enhance.") for n in names_on) and not any(n.startswith("enhance.") for n in names_off)
        assert torch.equal(o_off["e"]["A"], o_off["u"]["A"]) and not torch.equal(o_on["e"]["A"], o_on["u"]["A"])
        assert not torch.equal(p_on, p_off)
    elif switch == "unimodal_labels":
        assert {n.split(".")[0] for n in names_on - names_off} == {"uni", "uni_out", "centres", "seen"}
        assert {"uni_T", "uni_A", "uni_V"} <= set(parts_on) and set(parts_off) == {"l1"}
        assert torch.equal(parts_on["l1"], parts_off["l1"])
        assert torch.equal(p_on, p_off)  # the auxiliary branch is not on the prediction path
    else:
        assert names_on - names_off == {"centres", "seen"}
        assert torch.equal(p_on, p_off) and torch.equal(parts_on["l1"], parts_off["l1"])
        assert any(not torch.equal(parts_on[k], parts_off[k]) for k in ("uni_T", "uni_A", "uni_V"))


def test_generated_labels_follow_self_mm():
    y = torch.tensor([2.0, -1.0, 0.5, 3.0])
    a_m = torch.tensor([1.0, -0.5, 0.2, 4.0])
    assert torch.allclose(tetfn.generated_labels(a_m, a_m, y, -3, 3), y)  # as far as the fused one: y_s = y_m
    ys = tetfn.generated_labels(2 * a_m, a_m, y, -10, 10)
    assert torch.allclose(ys, 0.5 * y * 2 + 0.5 * (y + a_m))  # ratio rule and shift rule, averaged
    assert tetfn.generated_labels(a_m + 50, a_m, y, -3, 3).max() == 3.0  # clipped to the label range
    assert torch.isfinite(tetfn.generated_labels(a_m, torch.zeros(4), y, -3, 3)).all()
    pos, neg = torch.zeros(8), torch.ones(8)
    feats = torch.stack([pos, neg, 0.5 * (pos + neg)])
    a = tetfn.relative_distance(feats, pos, neg)
    assert torch.allclose(a, torch.tensor([1.0, -1.0, 0.0]), atol=1e-5)  # at pos, at neg, halfway
    f, p, q = torch.randn(5, 8, dtype=torch.float64), torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    d_p, d_n = (f - p).pow(2).sum(-1), (f - q).pow(2).sum(-1)
    r = (d_n - d_p) / d_p  # Self-MM's relative distance, mapped monotonically into [-1, 1]
    assert torch.allclose(tetfn.relative_distance(f, p, q), r / (r + 2), atol=1e-6)


def test_ulgm_state_is_training_only_and_never_read_by_predictions(data):
    net = net_for(data.info).train()
    x, y = batch_of(data["train"])
    with torch.no_grad():  # only positive labels so far: no negative centre, no generated labels yet
        targets, weights = net.unimodal_targets(net.run(x, unimodal=True), y.abs() + 0.1)
    assert net.seen[:, 0].all() and not net.seen[:, 1].any() and not net.centres[:, 1].any()
    assert all(torch.equal(targets[m], y.abs() + 0.1) and not weights[m].any() for m in tetfn.MODS)
    net = net_for(data.info)
    assert not net.seen.any()
    with torch.no_grad():
        net.loss_parts(x, x, y)  # eval mode: centres untouched
    assert not net.seen.any()
    net.train()
    with torch.no_grad():
        out = net.run(x, unimodal=True)
        targets, weights = net.unimodal_targets(out, y)
    assert net.seen.all() and net.centres.abs().sum() > 0
    pos = net.centres[:, 0].clone()
    net.unimodal_targets(out, y)  # a second update moves the centres by the EMA step only: same batch, same means
    assert torch.allclose(net.centres[:, 0], pos)
    for m in tetfn.MODS:
        assert not targets[m].requires_grad and ((targets[m] >= -3) & (targets[m] <= 3)).all()
        assert torch.allclose(weights[m], torch.tanh((targets[m] - y).abs()))
    assert any(not torch.equal(targets[m], y) for m in tetfn.MODS)
    net.eval()
    with torch.no_grad():
        before = net(x).pred
        net.centres.normal_()
        assert torch.equal(before, net(x).pred)


def test_text_queries_the_nonverbal_frames(unaligned):
    x, _ = batch_of(unaligned["train"], 8)
    on, off = net_for(unaligned.info), net_for(unaligned.info, text_enhanced=False)
    other = dict(x, text_ids=torch.where(x["text_mask"] > 0, torch.full_like(x["text_ids"], UNK_ID), 0))
    other["text_ids"][:, 0] = x["text_ids"][:, 0]
    with torch.no_grad():
        a, b = on.run(x), on.run(other)
        assert not torch.allclose(a["e"]["A"], b["e"]["A"])  # the text decides what is taken from the audio
        assert torch.equal(off.run(x)["e"]["A"], off.run(other)["e"]["A"])
        attn = a["attn"]["A"]  # [B, heads, Lt, La]
    lengths = x["audio_lengths"]
    assert attn.shape[-1] == 30 and int(lengths.min()) < 30
    pad = torch.arange(30)[None, :] >= lengths[:, None]
    assert float(attn.masked_select(pad[:, None, None, :].expand_as(attn)).abs().max()) == 0.0
    assert torch.allclose(attn.sum(-1), torch.ones_like(attn.sum(-1)))


def test_finite_when_whole_modalities_are_missing(data, fitted):
    proto = inter_protocol(1)
    unit = runner.run_unit(submission.load(SPEC), data, proto, 1)
    assert np.isfinite(unit.predictions).all()
    by_set = {c: unit.predictions[unit.conditions == c] for c in ("T", "TAV")}
    assert not np.array_equal(by_set["T"], by_set["TAV"])
    test = data["test"]
    b, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    empty = dataclasses.replace(b, text_ids=np.where(b.text_mask > 0, UNK_ID, 0),
                                audio=np.zeros_like(b.audio), vision=np.zeros_like(b.vision),
                                audio_lengths=np.zeros_like(b.audio_lengths))
    assert np.isfinite(fitted.predict(empty, mask)).all()


def test_cached_checkpoint_gives_identical_predictions(data, fitted):
    test = data["test"]
    b, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    first = fitted.predict(b, mask)
    logs = []
    again = submission.load(SPEC).build(data.info)
    again.log = logs.append
    again.fit(data["train"], data["valid"], 1)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(first, again.predict(b, mask)) and np.std(first) > 0
    assert torch.equal(again.net.centres, fitted.net.centres)


def test_same_predictions_whatever_the_batch_size(data, fitted):
    preds = [runner.run_unit(submission.load(SPEC), data, intra(), 1, batch_size=bs).predictions
             for bs in (1, 7, len(data["test"]))]
    assert np.isfinite(preds[0]).all()
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
    n = len(data["test"])
    assert not np.array_equal(preds[0][:n], preds[0][n:])  # r = 0 and r = 0.9 differ


def utterance_table(path, n_videos=10, seed=0):
    """A small utterance-level feature table (length-1 sequences once loaded) with transcripts."""
    rng = np.random.default_rng(seed)
    ids, split = [], []
    for v in range(n_videos):
        for c in range(1, int(rng.integers(3, 8)) + 1):
            ids.append(f"vid{v:02d}_{c}")
            split.append("test" if v < 3 else "train")
    n = len(ids)
    words = np.array(["good", "bad", "movie", "plot", "great", "boring"])
    np.savez(path, ids=np.array(ids), label=rng.uniform(-3, 3, n).astype(np.float32),
             text=rng.normal(size=(n, 8)).astype(np.float32), audio=rng.normal(size=(n, 5)).astype(np.float32),
             vision=rng.normal(size=(n, 6)).astype(np.float32), split_bclstm=np.array(split),
             text_raw=np.array([" ".join(rng.choice(words, int(rng.integers(1, 6)))) for _ in range(n)]))
    return path


@pytest.mark.parametrize("variant,proto", [("features", "mosi-utt-inter"), ("words", "mosi-utt-intra-words")])
def test_utterance_level_length_one_inputs(tmp_path, variant, proto):
    ds = load("mosi-utt", variant, data=utterance_table(tmp_path / "utt.npz"))
    assert ds.info.audio_len == 1 and ds.info.vision_len == 1
    p = protocols.load(proto)
    unit = runner.run_unit(submission.load("tetfn:epochs=2,hidden=16"), ds, p, p.seeds[0])
    assert np.isfinite(unit.predictions).all() and np.std(unit.predictions) > 0
    assert len(unit.predictions) == len(p.conditions) * len(ds["test"])
    if variant == "features":  # one frame to attend to: the enhanced audio does not depend on the text
        x, _ = batch_of(ds["train"], 8)
        net = net_for(ds.info)
        with torch.no_grad():
            a = net.run(x)["e"]["A"]
            b = net.run(dict(x, text_features=torch.randn_like(x["text_features"])))["e"]["A"]
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("bad,needle", [("center_momentum=0", "center_momentum must be in"),
                                        ("uni_weight=-1", "uni_weight must be >= 0"),
                                        ("hidden=30", "hidden must be"),
                                        ("text_enhanced=maybe", "text_enhanced='maybe' is not a bool")])
def test_bad_options_are_refused(bad, needle):
    with pytest.raises(MsabenchError, match=needle):
        submission.load(f"tetfn:{bad}")
