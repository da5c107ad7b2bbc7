"""The ALMT baseline: it learns, every paper component is switchable, robust to missing modalities, exact."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, runner, submission, training
from msabench import attention
from msabench.baselines import almt
from msabench.data import table
from msabench.errors import MsabenchError

from conftest import authors_info, inter_protocol, intra_protocol, small_dataset

SWITCHES = ("learnable_tokens", "hyper_modality", "multi_scale", "fusion_transformer")
SPEC = "almt:epochs=3,hidden=32"
SEED = 1


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


def batch_of(split, n=16):
    b, _ = masking.corrupt(split, training.complete(split), np.arange(n), reveal=False)
    return training.tensors(b), torch.from_numpy(split.labels[:n].astype(np.float32))


def net_for(info, **kw):
    torch.manual_seed(0)
    return almt.Net(info, almt.ALMTOptions(hidden=32, dropout=0.0, **kw)).eval()


def names(net):
    return {n for n, _ in net.named_parameters()}


def test_training_loss_falls(data, fitted):
    _, model = fitted
    h = model.history
    assert len(h) == 3 and set(h[0]) >= {"mse", "train_loss"} and h[-1]["train_loss"] < h[0]["train_loss"]
    assert all(np.isfinite(row["mse"]) and np.isfinite(row["valid_mae"]) for row in h)
    # and a few optimizer steps on one batch clearly reduce the (only) loss
    net = net_for(data.info).train()
    x, y = batch_of(data["train"], 32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss, parts = net.training_loss(x, x, y)
        assert set(parts) == {"mse"} and torch.isfinite(loss)  # the authors' loss, and only it
        assert torch.allclose(loss, torch.nn.functional.mse_loss(net(x).pred, y))
        first = first if first is not None else float(parts["mse"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, last = net.training_loss(x, x, y)
    assert float(last["mse"]) < 0.7 * first


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_the_model(data, switch):
    sub = submission.load(f"almt:{switch}=off")
    assert sub.name == f"almt[{switch}=False]" and sub.sha256 != submission.load("almt").sha256
    model = sub.build(data.info)
    assert getattr(model.options, switch) is False
    assert all(getattr(model.options, s) for s in SWITCHES if s != switch)
    assert f"almt:{switch}=off" in submission.ablations("almt")

    x, y = batch_of(data["train"])
    on, off = net_for(data.info), net_for(data.info, **{switch: False})
    with torch.no_grad():
        o_on, o_off = on.run(x), off.run(x)
        l_on, _ = on.training_loss(x, x, y)
        l_off, _ = off.training_loss(x, x, y)
    assert not torch.equal(o_on["pred"], o_off["pred"]) and not torch.equal(l_on, l_off)
    if switch == "learnable_tokens":  # 8 learned tokens per modality vs one mean-pooled token
        assert any(n.startswith("embedding.") for n in names(on)) and not any(n.startswith("embedding.")
                                                                              for n in names(off))
        assert o_on["embedded"]["A"].shape == (16, 8, 32) and o_off["embedded"]["A"].shape == (16, 1, 32)
    elif switch == "hyper_modality":  # no AHL: language meets the concatenated audio/visual tokens
        assert {"hyper_tokens"} <= names(on) and not any(n.startswith(("ahl.", "hyper_tokens")) for n in names(off))
        assert o_on["memory"].shape == (16, 8, 32) and o_off["memory"].shape == (16, 16, 32)
        ref = torch.cat([o_off["embedded"]["A"], o_off["embedded"]["V"]], 1)
        assert torch.equal(o_off["memory"], ref)
    elif switch == "multi_scale":  # same parameters, other queries
        assert names(on) == names(off)
        assert len(o_on["scales"]) == 3 and not torch.equal(o_on["memory"], o_off["memory"])
    else:  # no fusion Transformer: concatenated means + a linear map
        assert any(n.startswith("fusion.") for n in names(on)) and not any(n.startswith("fusion.") for n in names(off))
        assert on.regress.in_features == 32 and off.regress.in_features == 64


def test_language_selects_what_the_hyper_modality_holds(data):
    """AHL: language is the query, so changing only the text changes the hyper-modality tokens. In the
    authors' fusion the target tokens query the source only and the prediction is the extra token's
    output, so language reaches the prediction through AHL alone: without AHL (or with one token per
    modality, a single key) the text does not move the prediction."""
    x, _ = batch_of(data["train"])
    other = dict(x, text_ids=torch.where(x["text_mask"] > 0, torch.full_like(x["text_ids"], masking.UNK_ID), 0))
    for kw, changes in (({}, True), ({"hyper_modality": False}, False), ({"learnable_tokens": False}, False)):
        net = net_for(data.info, **kw)
        with torch.no_grad():
            a, b = net.run(x), net.run(other)
        assert not torch.equal(a["scales"][-1], b["scales"][-1])  # the language did change
        assert torch.allclose(a["memory"], b["memory"], atol=1e-6) is not changes, kw
        assert torch.allclose(a["pred"], b["pred"], atol=1e-6) is not changes, kw


def test_multi_scale_needs_more_than_one_scale(data):
    x, _ = batch_of(data["train"])
    with torch.no_grad():
        one_on = net_for(data.info, ahl_layers=1).run(x)
        one_off = net_for(data.info, ahl_layers=1, multi_scale=False).run(x)
    assert len(one_on["scales"]) == 1 and torch.equal(one_on["pred"], one_off["pred"])


# Parameters of the authors' ALMT (github.com/Haoyu-ha/ALMT, models/almt.py with configs/{mosi,mosei,sims}.yaml),
# without BERT and without the linear map of BERT's 768-d states to 128: counted by building their modules
# (torch, einops) with BERT left out. Facts of their code, as a test's reference values.
AUTHORS_PARAMETERS = {"mosi": 2_505_217, "mosei": 3_124_609, "sims": 3_134_465}


@pytest.mark.parametrize("name", ["mosi", "mosei", "sims"])
def test_at_the_authors_sizes_the_parameters_are_the_authors(name):
    net = almt.Net(authors_info(name),
                   almt.ALMTOptions(hidden=128, heads=8, head_dim=64, text_input="features"))
    ours = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in net.text.parameters())
    assert ours == AUTHORS_PARAMETERS[name]
    assert len(net.fusion.layers) == (2 if name == "mosi" else 4) and len(net.ahl) == 3
    assert len(net.language.layers) == 2 and all(len(e.layers) == 1 for e in net.embedding.values())


def test_the_embedding_attends_over_every_position_as_the_authors():
    """No padding mask in the modality embedding (the authors' Transformer has none): what lies in the
    padded frames reaches the tokens; the tokens are the first `tokens` rows of the layer's output."""
    torch.manual_seed(0)
    enc = attention.Encoder(5, 4, hidden=16, depth=1, heads=4, head_dim=4).eval()
    seq = torch.randn(2, 5, 16)
    other = seq.clone()
    other[:, 3:] = torch.randn(2, 2, 16) * 10
    with torch.no_grad():
        a, b = enc(seq)[:, :4], enc(other)[:, :4]
    assert a.shape == (2, 4, 16) and not torch.allclose(a, b, atol=1e-3)
    assert len(enc.scales(seq)) == 2 and torch.equal(enc.scales(seq)[-1], enc(seq))


def test_bad_options_are_one_line_errors():
    for spec in ("almt:tokens=0", "almt:ahl_layers=0", "almt:fusion_layers=-1", "almt:multi_scale=maybe", "almt:heads=3",
                 "almt:hidden=6", "almt:no_such=1"):
        with pytest.raises(MsabenchError):
            submission.load(spec)
    with pytest.raises(MsabenchError):
        almt.ALMTOptions(tokens=0)


def test_missing_modalities_cache_and_batch_size_exact(data, fitted):
    sub, model = fitted
    inter = inter_protocol(SEED)
    unit = runner.run_unit(sub, data, inter, SEED)
    assert set(unit.conditions) == {"T", "A", "V", "TA", "TV", "AV", "TAV"}
    assert np.isfinite(unit.predictions).all() and np.std(unit.predictions) > 0

    # all-[UNK] text, all-zero audio and vision at once: still finite
    batch, mask = masking.corrupt(data["test"], training.complete(data["test"]), slice(0, 10), reveal=False)
    empty = dataclasses.replace(batch, text_ids=np.where(batch.text_mask > 0, masking.UNK_ID, 0),
                                audio=np.zeros_like(batch.audio), vision=np.zeros_like(batch.vision))
    assert np.isfinite(model.predict(empty, mask)).all()

    # a fresh model fitted again with the same seed loads the checkpoint: bit-identical predictions
    logs = []
    again = almt.ALMT(data.info, sub.build(data.info).options, log=logs.append)
    again.fit(data["train"], data["valid"], SEED)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(again.predict(batch, mask), model.predict(batch, mask))
    assert np.array_equal(again.predict(empty, mask), model.predict(empty, mask))

    # the same predictions whatever the batch size; r = 0 and r = 0.9 differ
    preds = [runner.run_unit(sub, data, intra(), SEED, batch_size=bs).predictions for bs in (1, 7, len(data["test"]))]
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
    n = len(data["test"])
    assert not np.array_equal(preds[0][:n], preds[0][n:])


def utterance_table(n=48, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["good", "bad", "movie", "really", "plot", "boring", "great"])
    return {
        "ids": np.array([f"vid{i // 4:02d}_{i % 4}" for i in range(n)]),
        "label": rng.uniform(-3, 3, n).astype(np.float32),
        "text": rng.normal(size=(n, 6)).astype(np.float32),
        "audio": rng.normal(size=(n, 5)).astype(np.float32),
        "vision": rng.normal(size=(n, 4)).astype(np.float32),
        "split": np.array(["test" if i < 12 else "train" for i in range(n)]),
        "text_raw": np.array([" ".join(rng.choice(words, size=int(rng.integers(1, 6)))) for _ in range(n)]),
    }


@pytest.mark.parametrize("text", ["features", "words"])
def test_fits_utterance_level_length_one_inputs(text):
    spec = table.TableSpec(name="t", split_column="split", valid_fraction=0.25, valid_seed=0, text=text,
                           max_tokens=8)
    ds = table.from_arrays(utterance_table(), spec, "generated:utterance-table")
    assert ds["train"].audio.shape[1] == 1 and ds["train"].vision.shape[1] == 1
    if text == "features":
        assert ds["train"].text_features.shape[1] == 1
    model = submission.load("almt:epochs=2,hidden=16").build(ds.info)
    model.log = lambda msg: None
    model.fit(ds["train"], ds["valid"], SEED)
    batch, mask = masking.corrupt(ds["test"], training.complete(ds["test"]), slice(None), reveal=False)
    pred = model.predict(batch, mask)
    assert pred.shape == (len(ds["test"]),) and np.isfinite(pred).all() and np.std(pred) > 0
