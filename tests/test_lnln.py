"""The LNLN baseline: it learns, every paper component is switchable, robust to missing data, exact."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, protocols, runner, submission, training
from msabench.baselines import lnln
from msabench.data import table
from msabench.data.core import UNK_ID
from msabench.errors import MsabenchError

from conftest import authors_info, intra_protocol, small_dataset

SWITCHES = ("completeness_check", "proxy_generation", "adversarial", "hyper_modality", "reconstructor")
SPEC = "lnln:epochs=4,hidden=32,lr=0.003"
SEED = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with training.one_thread():  # the machine is shared: no spinning intra-op threads
        yield


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(120, 40, 60))


@pytest.fixture(scope="module")
def fitted(data):
    sub = submission.load(SPEC)
    model = sub.build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], SEED)
    return sub, model


def intra(rates=(0.0, 0.9)):
    return intra_protocol(rates, SEED)


def views(split, n=24, seed=5, complete_fraction=0.25):
    """A clean and a corrupted (LNLN augmentation) view of the first n training rows, their labels, the mask."""
    rows = np.arange(n)
    clean, _ = masking.corrupt(split, training.complete(split), rows, reveal=False)
    obs = training.augmentation(split, seed, complete_fraction)
    corrupted, _ = masking.corrupt(split, obs, rows, reveal=False)
    y = torch.from_numpy(split.labels[rows].astype(np.float32))
    return training.tensors(clean), training.tensors(corrupted), y, obs.text[rows]


def pair(info, switch, **kw):
    """Nets with the switch on and off; the `off` net gets the `on` net's weights for the parts both have."""
    opts = lnln.LNLNOptions(hidden=32, **kw)
    torch.manual_seed(0)
    on = lnln.Net(info, opts)
    torch.manual_seed(1)
    off = lnln.Net(info, dataclasses.replace(opts, **{switch: False}))
    mine = off.state_dict()
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k in mine and mine[k].shape == v.shape},
                        strict=False)
    return on.eval(), off.eval()


def test_training_loss_falls(fitted, data):
    _, model = fitted
    first, last = model.history[0], model.history[-1]
    assert len(model.history) == 4
    assert {"mse", "cc", "adv", "rec"} <= set(first)  # the authors' task loss is MSE
    for row in model.history:
        assert all(np.isfinite(row[k]) for k in ("train_loss", "mse", "cc", "adv", "rec"))
    assert last["train_loss"] < 0.9 * first["train_loss"]
    assert last["cc"] < first["cc"]
    # the estimator learns how complete the language is: on held-out views, w follows the true share
    split = data["valid"]
    clean, corrupted, _, _ = views(split, n=len(split), seed=99)
    model.net.eval()
    with torch.no_grad():
        w = model.net.run(corrupted)["w"].numpy()
    truth = lnln.text_completeness(clean, corrupted).numpy()
    assert truth.std() > 0.2 and np.corrcoef(w, truth)[0, 1] > 0.6
    assert last["rec"] < first["rec"]


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_the_model(data, switch):
    sub = submission.load(f"lnln:{switch}=off")
    assert sub.name == f"lnln[{switch}=False]" and sub.sha256 != submission.load("lnln").sha256
    model = sub.build(data.info)
    assert getattr(model.options, switch) is False
    assert all(getattr(model.options, s) for s in SWITCHES if s != switch)

    on, off = pair(data.info, switch)
    clean, corrupted, y, _ = views(data["train"])
    gone = {n for n, _ in on.named_parameters()} - {n for n, _ in off.named_parameters()}
    assert not {n for n, _ in off.named_parameters()} - {n for n, _ in on.named_parameters()}
    prefix = {"completeness_check": ("cc_",), "proxy_generation": ("proxy_tokens", "generator.", "discriminator."),
              "adversarial": ("discriminator.",), "hyper_modality": ("hyper_tokens", "hyper."),
              "reconstructor": ("reconstruct.",)}
    assert gone and all(n.startswith(prefix[switch]) for n in gone)
    assert all(any(n.startswith(p) for n in gone) for p in prefix[switch])
    with torch.no_grad():
        p_on, p_off = on.loss_parts(clean, corrupted, y), off.loss_parts(clean, corrupted, y)
        pred_on, pred_off = on(corrupted).pred, off(corrupted).pred
    lost = {"completeness_check": {"cc"}, "proxy_generation": {"adv"}, "adversarial": {"adv"},
            "hyper_modality": set(), "reconstructor": {"rec"}}[switch]
    assert set(p_on) - set(p_off) == lost and not set(p_off) - set(p_on)
    assert all(float(p_on[k]) > 0 for k in lost)
    if switch in ("adversarial", "reconstructor"):  # training-only parts: the same predictions
        assert torch.equal(pred_on, pred_off)
        assert torch.equal(p_on["mse"], p_off["mse"])
    else:  # parts of the forward pass: other predictions
        assert not torch.allclose(pred_on, pred_off)


def test_completeness_target_is_the_share_of_language_kept(data):
    split = data["train"]
    clean, corrupted, _, observed = views(split, n=40)
    got = lnln.text_completeness(clean, corrupted).numpy()
    mask = clean["text_mask"].numpy() > 0
    lengths = mask.sum(1)
    pos = np.arange(mask.shape[1])[None, :]
    droppable = mask & (pos > 0) & (pos < lengths[:, None] - 1)  # not [CLS]/[SEP]
    kept = (observed | (clean["text_ids"].numpy() == UNK_ID)) & droppable  # an [UNK] stays what it was
    want = np.where(droppable.sum(1) > 0, kept.sum(1) / np.maximum(droppable.sum(1), 1), 1.0)
    assert np.allclose(got, want) and got.min() < 0.5 < got.max() == 1.0 and len(np.unique(got)) > 5
    assert torch.equal(lnln.text_completeness(clean, clean), torch.ones(40))
    nothing = masking.Observed(*(np.zeros_like(v) for v in masking.valid(split).values()))
    empty, _ = masking.corrupt(split, nothing, np.arange(40), reveal=False)
    assert torch.equal(lnln.text_completeness(clean, training.tensors(empty)), torch.zeros(40))
    # token features only: every valid position counts (no special tokens), a dropped one is a zero vector
    feats = torch.ones(2, 5, 3)
    half = feats.clone()
    half[0, :2] = 0
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    a = {"text_mask": mask, "text_features": feats, "audio": torch.zeros(2, 1, 1)}
    b = {**a, "text_features": half}
    assert torch.allclose(lnln.text_completeness(a, b), torch.tensor([0.5, 1.0]))
    # features WITH token ids (MMSA's files): [CLS]/[SEP] are never dropped, so they never count; a
    # transcript whose every word is dropped is 0 complete whatever the model reads
    ids = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 7, 102, 0, 0, 0]])
    mask = (ids > 0).long()
    feats = torch.ones(2, 6, 3) * mask[..., None]
    dropped_ids = torch.where((ids > 0) & (ids != 101) & (ids != 102), UNK_ID, ids)
    dropped = feats * ((ids == 101) | (ids == 102))[..., None]
    a = {"text_mask": mask, "text_ids": ids, "text_features": feats}
    b = {"text_mask": mask, "text_ids": dropped_ids, "text_features": dropped}
    assert torch.equal(lnln.text_completeness(a, b), torch.zeros(2))
    half_ids = dropped_ids.clone()
    half_ids[0, 1] = 7
    half_feats = dropped.clone()
    half_feats[0, 1] = 1
    c = {"text_mask": mask, "text_ids": half_ids, "text_features": half_feats}
    assert torch.allclose(lnln.text_completeness(a, c), torch.tensor([1 / 3, 0.0]))


def test_training_augmentation_leaves_half_the_samples_complete_per_modality(data):
    split = data["train"]
    assert lnln.LNLN(data.info).recipe().complete_per_modality
    obs = training.augmentation(split, 11, 0.5, per_modality=True)
    pads = masking.valid(split)
    whole = {m: (getattr(obs, {"T": "text", "A": "audio", "V": "vision"}[m]) == pads[m]).all(1) for m in "TAV"}
    n = len(split)
    for m in "TAV":  # exactly n/2 chosen complete; a few more keep everything by chance (low r, short input)
        assert n // 2 <= whole[m].sum() < n // 2 + n // 8
    assert not np.array_equal(whole["T"], whole["A"]) and not np.array_equal(whole["A"], whole["V"])
    joint = training.augmentation(split, 11, 0.5)
    jwhole = [(getattr(joint, k) == pads[m]).all(1) for k, m in (("text", "T"), ("audio", "A"), ("vision", "V"))]
    assert (jwhole[0] & jwhole[1] & jwhole[2]).sum() >= 0.35 * n  # the shared recipe: complete all at once


# Parameters of the authors' LNLN (github.com/Haoyu-ha/LNLN, models/lnln.py with configs/train_{mosi,mosei,sims}
# .yaml), without BERT and without the linear map of BERT's 768-d states to 128: counted by building their
# modules (torch, einops) with BERT left out. Facts of their code, as a test's reference values.
AUTHORS_PARAMETERS = {"mosi": 6_384_580, "mosei": 7_003_972, "sims": 7_013_828}


@pytest.mark.parametrize("name", ["mosi", "mosei", "sims"])
def test_at_the_authors_sizes_the_parameters_are_the_authors(name):
    info = authors_info(name)
    net = lnln.Net(info, lnln.LNLNOptions(hidden=128, heads=8, head_dim=64, text_input="features"))
    ours = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in net.text.parameters())
    assert ours == AUTHORS_PARAMETERS[name]
    assert len(net.fusion.layers) == (2 if name == "mosi" else 4) and len(net.hyper) == 3


def test_structure_three_language_scales_and_the_fusion_reads_them(data):
    torch.manual_seed(0)
    net = lnln.Net(data.info, lnln.LNLNOptions(hidden=32)).eval()
    _, corrupted, y, _ = views(data["train"])
    out = net.run(corrupted)
    assert all(out["tokens"][m].shape == (len(y), 8, 32) for m in "TAV")
    assert len(net.language.scales(out["dominant"])) == 3 == len(net.hyper)
    assert len(net.fusion.layers) == 2  # synth-mosi stands in for MOSI
    sims = dataclasses.replace(data.info, name="synth-sims")
    assert len(lnln.Net(sims, lnln.LNLNOptions(hidden=32)).fusion.layers) == 4
    assert len(lnln.Net(sims, lnln.LNLNOptions(hidden=32, fusion_depth=1)).fusion.layers) == 1
    # the first scale (the corrected dominant feature itself) guides the first hyper-modality layer
    with torch.no_grad():
        net.language.pos.add_(1.0)  # moves scale 0 (and so every later one)
        moved = net.run(corrupted)["pred"]
    assert not torch.allclose(moved, out["pred"])


def test_corrected_dominant_feature_and_the_reversed_proxy(data, monkeypatch):
    _, corrupted, y, _ = views(data["train"])

    def run():
        torch.manual_seed(0)
        net = lnln.Net(data.info, lnln.LNLNOptions(hidden=32)).train()
        out = net.run(corrupted)
        torch.nn.functional.l1_loss(out["pred"], y).backward()
        return net, out

    net, out = run()
    w = out["w"][:, None, None]
    assert out["w"].shape == (len(y),) and bool(((out["w"] > 0) & (out["w"] < 1)).all())
    assert out["proxy"].shape == out["tokens"]["T"].shape == (len(y), 8, 32)
    assert torch.allclose(out["dominant"], w * out["tokens"]["T"] + (1 - w) * out["proxy"], atol=1e-6)
    # as the authors' code: w is not detached (the task loss moves the estimator) ...
    assert any(p.grad is not None and p.grad.any() for p in net.cc_head.parameters())
    # ... and the reversal sits on the proxy itself: the task loss reaches the generator negated
    g_rev, r_rev = net.generator.layers[0].attn.q.weight.grad.clone(), net.regress.weight.grad.clone()
    monkeypatch.setattr(lnln, "reverse_gradient", lambda t: t)
    plain, _ = run()
    assert g_rev.abs().sum() > 0 and torch.allclose(g_rev, -plain.generator.layers[0].attn.q.weight.grad, atol=1e-6)
    assert torch.allclose(r_rev, plain.regress.weight.grad, atol=1e-6)


def test_gradient_reversal_and_the_discriminator(data, monkeypatch):
    x = torch.randn(3, 4, requires_grad=True)
    lnln.reverse_gradient(x).sum().backward()
    assert torch.equal(x.grad, -torch.ones(3, 4))

    clean, corrupted, y, _ = views(data["train"])

    def grads():
        torch.manual_seed(0)
        net = lnln.Net(data.info, lnln.LNLNOptions(hidden=32)).eval()
        net.loss_parts(clean, corrupted, y)["adv"].backward()
        return (net.generator.layers[0].attn.q.weight.grad.clone(), net.discriminator[0].weight.grad.clone(),
                net.text.pos.grad)

    g_rev, d_rev, text_rev = grads()
    monkeypatch.setattr(lnln, "reverse_gradient", lambda t: t)
    g_plain, d_plain, _ = grads()
    assert g_rev.abs().sum() > 0 and torch.allclose(g_rev, -g_plain, atol=1e-6)
    assert torch.allclose(d_rev, d_plain, atol=1e-6)  # the discriminator itself minimises the loss
    assert text_rev is not None and text_rev.any()  # the complete language side is not detached (authors')


def test_missing_modalities_cache_batch_size_and_rates(fitted, data):
    sub, model = fitted
    inter = protocols.parse({"name": "t-inter", "version": 1, "dataset": "synth-mosi", "seeds": [SEED],
                             "primary_metric": "Non0_acc_2", "missing": {"kind": "inter"}}, "test")
    unit = runner.run_unit(sub, data, inter, SEED)
    assert set(unit.conditions) == {"T", "A", "V", "TA", "TV", "AV", "TAV"}
    assert np.isfinite(unit.predictions).all() and np.std(unit.predictions) > 0

    # all-[UNK] text, all-zero audio and vision at once: still finite
    test = data["test"]
    batch, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    empty = dataclasses.replace(batch, text_ids=np.where(batch.text_mask > 0, UNK_ID, 0),
                                audio=np.zeros_like(batch.audio), vision=np.zeros_like(batch.vision))
    assert np.isfinite(model.predict(empty, mask)).all()

    # a fresh model with the same seed loads the checkpoint: bit-identical predictions
    logs = []
    again = lnln.LNLN(data.info, sub.build(data.info).options, log=logs.append)
    again.fit(data["train"], data["valid"], SEED)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(again.predict(batch, mask), model.predict(batch, mask))
    assert np.array_equal(again.predict(empty, mask), model.predict(empty, mask))

    # the same predictions whatever the batch size; r = 0 and r = 0.9 differ
    preds = [runner.run_unit(sub, data, intra(), SEED, batch_size=bs).predictions for bs in (1, 7, len(test))]
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
    n = len(test)
    assert not np.array_equal(preds[0][:n], preds[0][n:])


def test_length_one_utterance_level_inputs(tmp_path):
    """Utterance-level feature tables: text, audio and vision are length-1 sequences."""
    rng = np.random.default_rng(0)
    n = 90
    arrays = {"ids": np.array([f"v{i // 3:02d}_{i % 3}" for i in range(n)]),
              "label": rng.uniform(-3, 3, n).astype(np.float32),
              "text": rng.normal(size=(n, 8)).astype(np.float32),
              "audio": rng.normal(size=(n, 5)).astype(np.float32),
              "vision": rng.normal(size=(n, 6)).astype(np.float32),
              "split": np.array(["test" if i < 30 else "train" for i in range(n)])}
    np.savez(tmp_path / "utt.npz", **arrays)
    ds = table.load(tmp_path / "utt.npz", table.TableSpec(name="utt", valid_fraction=0.2))
    assert ds.info.text_len == ds.info.audio_len == ds.info.vision_len == 1
    model = submission.load("lnln:epochs=2,hidden=16,input_noise=0.5").build(ds.info)
    model.log = lambda msg: None
    model.fit(ds["train"], ds["valid"], 1)
    assert len(model.history) == 2 and all(np.isfinite(r["train_loss"]) for r in model.history)
    assert model.net.text.use_ids is False
    test = ds["test"]
    full, mask = masking.corrupt(test, training.complete(test), slice(None), reveal=False)
    nothing = masking.Observed(*(np.zeros_like(v) for v in masking.valid(test).values()))
    gone, _ = masking.corrupt(test, nothing, slice(None), reveal=False)
    p_full, p_gone = model.predict(full, mask), model.predict(gone, mask)
    assert np.isfinite(p_full).all() and np.isfinite(p_gone).all() and np.std(p_full) > 0
    assert not np.array_equal(p_full, p_gone)
    # a length-1 text vector is either kept (completeness 1) or dropped (0)
    c, g = training.tensors(full), training.tensors(gone)
    assert torch.equal(lnln.text_completeness(c, g), torch.zeros(len(test)))


@pytest.mark.parametrize("spec,needle", [("lnln:tokens=0", "tokens must be >= 1"),
                                         ("lnln:depth=0", "depth must be >= 1"),
                                         ("lnln:heads=3", "heads must be >= 1 and divide hidden"),
                                         ("lnln:adv_weight=-1", "adv_weight must be >= 0"),
                                         ("lnln:adversarial=maybe", "is not a bool"),
                                         ("lnln:hidden=6", "multiple of 4"),
                                         ("lnln:nope=1", "has no option")])
def test_bad_options(spec, needle):
    with pytest.raises(MsabenchError, match=needle):
        submission.load(spec)
