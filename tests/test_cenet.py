"""CENet baseline: trains, both paper components switch off cleanly, the nonverbal vocabulary comes from the
training split only, robust to missing modalities, cached, batch-invariant, runs on length-1 inputs."""

import dataclasses

import numpy as np
import pytest
import torch

from msabench import masking, protocols, runner, submission, training
from msabench.baselines import cenet
from msabench.data import table
from msabench.errors import MsabenchError

from conftest import inter_protocol, intra_protocol, small_dataset

FAST = "epochs=8,hidden=32,lr=3e-3,patience=8"
SEED = 7
SWITCHES = ("cross_modal_enhancement", "feature_transformation")


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(300, 60, 60))  # 120 training samples: the release's sharp CE attention (x 8) overfits in 8 epochs


@pytest.fixture(scope="module")
def fitted(data):
    sub = submission.load(f"cenet:{FAST}")
    model = sub.build(data.info)
    model.log = lambda msg: None
    model.fit(data["train"], data["valid"], SEED)
    return sub, model


def intra(rates=(0.0, 0.5, 0.9)):
    return intra_protocol(rates, SEED)


def batch_of(split, n=16):
    clean, _ = masking.corrupt(split, training.complete(split), np.arange(n), reveal=False)
    return training.tensors(clean)


def net_with_vocabulary(info, split, **kw):
    opts = cenet.CENetOptions(hidden=32, **kw)
    torch.manual_seed(0)
    net = cenet.Net(info, opts)
    if opts.cross_modal_enhancement and opts.feature_transformation:
        net.load_codebooks({m: cenet.fit_codebook(getattr(split, key), getattr(split, lengths), opts.codebook_size,
                                                  opts.kmeans_iters, opts.kmeans_frames)
                            for m, (key, lengths) in cenet.NONVERBAL.items()})
    return net.eval()


def test_training_loss_falls(fitted):
    _, model = fitted
    first, last = model.history[0], model.history[-1]
    assert len(model.history) == 8
    assert last["train_loss"] < 0.97 * first["train_loss"]
    assert last["valid_mae"] < first["valid_mae"]
    assert all(np.isfinite(row["train_loss"]) and np.isfinite(row["l1"]) for row in model.history)


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_is_an_option_and_renames(data, switch):
    sub = submission.load(f"cenet:{switch}=off")
    assert sub.name == f"cenet[{switch}=False]"
    model = sub.build(data.info)
    assert getattr(model.options, switch) is False
    assert all(getattr(model.options, s) for s in SWITCHES if s != switch)
    assert submission.load("cenet").name == "cenet"


def test_cross_modal_enhancement_switch(data):
    split = data["train"]
    on = net_with_vocabulary(data.info, split)
    off = net_with_vocabulary(data.info, split, cross_modal_enhancement=False)
    names_on, names_off = set(on.state_dict()), set(off.state_dict())
    extra = names_on - names_off
    assert names_off < names_on and all(n.startswith(("ce.", "nonverbal.")) for n in extra)
    assert any(n.startswith("ce.0.shift") for n in extra) and "nonverbal.A.centroids" in extra
    x = batch_of(split)
    louder = dict(x, audio=x["audio"] * 3.0, vision=x["vision"] * 3.0)
    with torch.no_grad():
        assert not torch.allclose(on(x).pred, off(x).pred)
        assert not torch.equal(on(x).pred, on(louder).pred)  # the CE module reads audio and vision
        assert torch.equal(off(x).pred, off(louder).pred)  # without it the model is text-only
        on.ce[0].shift.weight.zero_(), on.ce[0].shift.bias.zero_()  # a zero shift leaves the text states as they are
        assert torch.allclose(on(x).pred, off(x).pred, atol=1e-6)


def test_ce_attention_respects_padding_and_empty_sequences():
    ce = cenet.CrossModalEnhancement(8, 0.0).eval()
    torch.manual_seed(1)
    text = torch.randn(2, 3, 8)
    tokens = torch.randn(2, 5, 8)
    valid = torch.tensor([[True, True, False, False, False], [False] * 5])
    ctx, maps = ce.contexts(text, {"A": (tokens, valid), "V": (tokens, valid)})
    assert torch.allclose(maps["A"][0].sum(-1), torch.ones(3)) and (maps["A"][0][:, 2:] == 0).all()
    assert (maps["A"][1] == 0).all() and (ctx[0][1] == 0).all()  # no valid frame: zero context, no NaN
    changed = tokens.clone()
    changed[0, 2:] = 100.0  # padding frames never matter
    ctx2, _ = ce.contexts(text, {"A": (changed, valid), "V": (changed, valid)})
    assert torch.equal(ctx[0][0], ctx2[0][0])


def test_feature_transformation_switch(data):
    split = data["train"]
    on = net_with_vocabulary(data.info, split)
    off = net_with_vocabulary(data.info, split, feature_transformation=False)
    assert isinstance(on.nonverbal["A"], cenet.Vocabulary) and on.nonverbal["A"].embed.num_embeddings == 17
    assert "nonverbal.A.centroids" not in off.state_dict() and "nonverbal.A.0.weight" in off.state_dict()
    x = batch_of(split)
    nudged = dict(x, audio=x["audio"] + 1e-4 * (x["audio"] != 0), vision=x["vision"] + 1e-4 * (x["vision"] != 0))
    with torch.no_grad():
        same_ids = all(torch.equal(on.nonverbal[m].ids(x[k]), on.nonverbal[m].ids(nudged[k]))
                       for m, (k, _) in cenet.NONVERBAL.items())
        assert same_ids
        assert torch.equal(on(x).pred, on(nudged).pred)  # a frame counts only through its vocabulary id
        assert not torch.equal(off(x).pred, off(nudged).pred)  # raw features: every change counts


def test_vocabulary_ids_and_zero_frames(data):
    split = data["train"]
    net = net_with_vocabulary(data.info, split)
    voc = net.nonverbal["A"]
    x = batch_of(split)
    ids = voc.ids(x["audio"])
    zero = (x["audio"] == 0).all(-1)
    assert zero.any() and (~zero).any()
    assert (ids[zero] == 16).all() and (ids[~zero] < 16).all()
    book = {k: getattr(voc, k).numpy().astype(np.float64) for k in ("mean", "std", "centroids")}
    frames = x["audio"][~zero].numpy().astype(np.float64)
    expect = cenet.assign_ids((frames - book["mean"]) / book["std"], book["centroids"])
    assert np.array_equal(ids[~zero].numpy(), expect)
    assert len(np.unique(ids[~zero].numpy())) > 4  # the vocabulary is used, not collapsed


def test_kmeans_finds_clusters_and_handles_few_rows():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in centres])
    found = cenet.kmeans(z, 3, 30, np.random.default_rng(1))
    assert np.abs(np.sort(found, 0) - np.sort(centres, 0)).max() < 0.1
    few = cenet.kmeans(z[:2], 4, 30, np.random.default_rng(1))
    assert few.shape == (4, 2) and np.isfinite(few).all()
    assert len(set(cenet.assign_ids(z[:2], few).tolist())) == 2  # both rows became centroids
    assert not cenet.kmeans(np.zeros((0, 2)), 3, 5, np.random.default_rng(1)).any()


def test_vocabulary_comes_from_the_training_split_deterministically(fitted, data):
    _, model = fitted
    train = data["train"]
    again = cenet.fit_codebook(train.audio, train.audio_lengths, 16, 30, 20000)
    for key, value in again.items():
        assert np.array_equal(model.codebooks["A"][key], value)
        assert np.array_equal(model.net.nonverbal["A"].state_dict()[key].numpy(), value)  # in the checkpoint
    test = data["test"]
    other = cenet.fit_codebook(test.audio, test.audio_lengths, 16, 30, 20000)
    assert not np.array_equal(other["centroids"], again["centroids"])
    assert np.allclose(again["mean"], train.audio[(train.audio != 0).any(-1)].mean(0), atol=1e-5)
    capped = cenet.fit_codebook(train.audio, train.audio_lengths, 16, 30, 50)
    assert not np.array_equal(capped["centroids"], again["centroids"])


def test_missing_modalities_cache_and_batch_size(fitted, data):
    sub, model = fitted
    inter = inter_protocol(SEED)
    unit = runner.run_unit(sub, data, inter, SEED)  # loads the checkpoint `fitted` cached
    assert set(unit.conditions) == {"T", "A", "V", "TA", "TV", "AV", "TAV"}
    assert np.isfinite(unit.predictions).all() and np.std(unit.predictions) > 0

    split = data["test"]
    batch, mask = masking.corrupt(split, training.complete(split), slice(0, 10), reveal=False)
    empty = dataclasses.replace(batch, text_ids=np.where(batch.text_mask > 0, masking.UNK_ID, 0),
                                audio=np.zeros_like(batch.audio), vision=np.zeros_like(batch.vision))
    assert np.isfinite(model.predict(empty, mask)).all()

    logs = []
    again = cenet.CENet(data.info, model.options, log=logs.append)
    again.fit(data["train"], data["valid"], SEED)
    assert any("loaded checkpoint" in m for m in logs) and again.history == []
    assert np.array_equal(again.predict(batch, mask), model.predict(batch, mask))
    assert np.array_equal(again.predict(empty, mask), model.predict(empty, mask))

    preds = [runner.run_unit(sub, data, intra(), SEED, batch_size=bs).predictions for bs in (1, 7, len(split))]
    assert np.array_equal(preds[0], preds[1]) and np.array_equal(preds[0], preds[2])
    n = len(split)
    assert not np.array_equal(preds[0][:n], preds[0][-n:])  # r = 0 and r = 0.9 differ


@pytest.mark.parametrize("raw", ["codebook_size=1", "ce_layers=0", "kmeans_iters=0", "kmeans_frames=0",
                                 "feature_transformation=maybe", "hidden=30"])
def test_bad_options_are_refused(raw):
    with pytest.raises(MsabenchError):
        submission.load(f"cenet:{raw}")


def utterance_table(text):
    rng = np.random.default_rng(0)
    n = 90
    ids = np.array([f"vid{i // 6:02d}_{i % 6 + 1}" for i in range(n)])
    sentiment = rng.uniform(-3, 3, n)
    words = np.array(["good", "bad", "fine", "movie", "plot"])
    raw = {"ids": ids, "label": sentiment.astype(np.float32),
           "text": (rng.normal(size=(n, 8)) + sentiment[:, None] * 0.3).astype(np.float32),
           "audio": (rng.normal(size=(n, 5)) + sentiment[:, None] * 0.5).astype(np.float32),
           "vision": rng.normal(size=(n, 6)).astype(np.float32),
           "split": np.array(["test" if i < 24 else "train" for i in range(n)]),
           "text_raw": np.array([" ".join(rng.choice(words, 4)) for _ in range(n)])}
    return table.from_arrays(raw, table.TableSpec(name="utt", split_column="split", valid_fraction=0.2, text=text),
                             "generated:test")


@pytest.mark.parametrize("text", ["features", "words"])
def test_fits_on_length_one_sequences(text):
    ds = utterance_table(text)
    assert ds.info.audio_len == 1 and ds.info.vision_len == 1
    p = protocols.parse({"name": "t-utt", "version": 1, "dataset": "utt", "variant": text, "seeds": [1],
                         "primary_metric": "Non0_acc_2",
                         "missing": {"kind": "intra", "rates": [0.0, 0.9]}}, "test")
    model = cenet.build(ds.info, cenet.CENetOptions(epochs=2, hidden=16))
    model.log = lambda msg: None
    model.fit(ds["train"], ds["valid"], 1)
    assert model.net.nonverbal["A"].centroids.abs().sum() > 0  # fitted on the 1-frame training utterances
    unit = runner.run_unit(submission.load("cenet:epochs=2,hidden=16"), ds, p, 1)
    assert np.isfinite(unit.predictions).all() and np.std(unit.predictions) > 0


def test_ce_attention_logits_are_scaled_as_the_authors_release():
    """softmax(Q K^T * 8) (the release's SelfAttention), not Q K^T / sqrt(hidden)."""
    ce = cenet.CrossModalEnhancement(16, 0.0).eval()
    torch.manual_seed(2)
    text, tokens = torch.randn(1, 3, 16), torch.randn(1, 4, 16)
    valid = torch.ones(1, 4, dtype=torch.bool)
    _, maps = ce.contexts(text, {"A": (tokens, valid), "V": (tokens, valid)})
    want = torch.softmax(ce.q["A"](text) @ ce.k["A"](tokens).transpose(1, 2) * 8.0, dim=-1)
    assert torch.allclose(maps["A"], want, atol=1e-6)
    assert not torch.allclose(maps["A"], torch.softmax(ce.q["A"](text) @ ce.k["A"](tokens).transpose(1, 2) / 4.0,
                                                       dim=-1), atol=1e-3)
