"""synth-mosi: determinism, the exact MMSA layout, token and label conventions, the
unaligned_50 variant at MOSI's real shapes (with 768-d text features), an end-to-end
check that the example submission learns it and degrades under missing data, and
synth-sims (the same inputs labelled as CH-SIMS, with unimodal labels)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from msabench import cli, data, masking, protocols
from msabench.data import synth
from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, UNK_ID
from msabench.errors import MsabenchError
from msabench.interface import Batch, Mask

from conftest import write_pickle

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("train", "valid", "test")
ARRAY_KEYS = {"text_bert", "audio", "vision", "regression_labels", "classification_labels"}
OBJECT_KEYS = {"id", "raw_text", "annotations"}
ALIGNED_KEYS = ARRAY_KEYS | OBJECT_KEYS
UNALIGNED_KEYS = ALIGNED_KEYS | {"audio_lengths", "vision_lengths"}


@pytest.fixture(scope="module")
def raw():
    return synth.make_raw()


@pytest.fixture(scope="module")
def raw_unaligned():
    return synth.make_raw(seed=5, sizes=(90, 20, 40), audio_len=60, vision_len=70, aligned=False)


def same(a, b) -> bool:
    """Equal type, dtype, shape and bytes (lists: equal elements)."""
    if isinstance(a, list) or isinstance(b, list):
        return type(a) is type(b) and a == b
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return a.tobytes() == b.tobytes()


def text_lengths(part) -> np.ndarray:
    return part["text_bert"][:, 1].sum(1).astype(np.int64)


# --- determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"aligned": False, "audio_len": 60, "vision_len": 70, "sizes": (50, 10, 20)},
                                    {**synth.VARIANTS["unaligned_50"], "sizes": (30, 10, 10)}])
def test_same_seed_is_bit_identical(kwargs):
    a, b = synth.make_raw(seed=7, **kwargs), synth.make_raw(seed=7, **kwargs)
    for split in SPLITS:
        assert a[split].keys() == b[split].keys()
        for key in a[split]:
            assert same(a[split][key], b[split][key]), (split, key)
    assert synth.make_dataset(7, **kwargs).fingerprint == synth.make_dataset(7, **kwargs).fingerprint


def test_different_seed_gives_different_data(raw):
    other = synth.make_raw(seed=1)
    for split in SPLITS:
        for key in ("text_bert", "audio", "vision", "regression_labels", "id", "raw_text"):
            assert not same(raw[split][key], other[split][key]), (split, key)
    assert synth.make_dataset(0).fingerprint != synth.make_dataset(1).fingerprint


# --- layout ---------------------------------------------------------------------------


def test_default_split_sizes(raw):
    assert list(raw) == list(SPLITS)
    assert [len(raw[s]["regression_labels"]) for s in SPLITS] == [1284, 229, 686]
    ds = synth.make_dataset()
    assert [len(ds[s]) for s in SPLITS] == [1284, 229, 686]


def check_common(part, n, audio_shape, vision_shape, L=50):
    assert part["text_bert"].shape == (n, 3, L)
    assert part["audio"].shape == (n, *audio_shape)
    assert part["vision"].shape == (n, *vision_shape)
    for key in ARRAY_KEYS:
        assert part[key].dtype == np.float32, key
    assert part["regression_labels"].shape == part["classification_labels"].shape == (n,)
    for key in OBJECT_KEYS:
        assert part[key].dtype == object and part[key].shape == (n,), key
        assert all(type(x) is str for x in part[key]), key


def test_aligned_keys_shapes_dtypes(raw):
    for split, n in zip(SPLITS, (1284, 229, 686)):
        part = raw[split]
        assert set(part) == ALIGNED_KEYS, split
        check_common(part, n, (50, 5), (50, 20))


def test_unaligned_keys_shapes_dtypes(raw_unaligned):
    for split, n in zip(SPLITS, (90, 20, 40)):
        part = raw_unaligned[split]
        assert set(part) == UNALIGNED_KEYS, split
        check_common(part, n, (60, 5), (70, 20))
        for key, T in (("audio_lengths", 60), ("vision_lengths", 70)):
            lengths = part[key]
            assert isinstance(lengths, list) and len(lengths) == n
            assert all(type(x) is int and 2 <= x < T for x in lengths), key
            assert len(set(lengths)) > 5, key  # lengths vary


def test_unaligned_frames_zero_after_length(raw_unaligned):
    for part in raw_unaligned.values():
        for key in ("audio", "vision"):
            x, lengths = part[key], np.array(part[f"{key}_lengths"])
            steps = np.arange(x.shape[1])[None, :]
            assert not np.any(x[steps >= lengths[:, None]]), key
            assert np.all(np.abs(x).sum(2)[steps < lengths[:, None]] > 0), key  # every valid frame is data


def test_aligned_frames_zero_beyond_text_length(raw):
    for part in raw.values():
        lengths = text_lengths(part)
        steps = np.arange(50)[None, :]
        for key in ("audio", "vision"):
            x = part[key]
            assert not np.any(x[steps >= lengths[:, None]]), key
            assert np.all(np.abs(x).sum(2)[steps < lengths[:, None]] > 0), key


def test_aligned_rejects_unequal_lengths():
    with pytest.raises(MsabenchError, match="aligned"):
        synth.make_raw(audio_len=375)
    with pytest.raises(MsabenchError, match="seed"):
        synth.make_raw(seed=-1)
    with pytest.raises(MsabenchError, match="sizes"):
        synth.make_raw(sizes=(10, 10))


def test_ids_videos_and_clips(raw):
    videos = {}
    for split in SPLITS:
        ids = raw[split]["id"]
        assert len(set(ids)) == len(ids)
        vids = [i.split("$_$")[0] for i in ids]
        assert all(i.count("$_$") == 1 and len(v) == 11 and i.split("$_$")[1].isdigit() for i, v in zip(ids, vids))
        videos[split] = set(vids)
        assert len(ids) / len(videos[split]) > 3  # several clips per video
    assert not (videos["train"] & videos["valid"]) and not (videos["train"] & videos["test"])
    assert not (videos["valid"] & videos["test"])


# --- text conventions -----------------------------------------------------------------


def test_special_tokens(raw):
    for part in raw.values():
        tb = part["text_bert"]
        assert np.array_equal(tb, np.rint(tb))  # ids stored as integral floats
        ids, att, seg = tb[:, 0].astype(np.int64), tb[:, 1], tb[:, 2]
        n, L = ids.shape
        lengths = text_lengths(part)
        steps = np.arange(L)[None, :]
        assert np.array_equal(att, (steps < lengths[:, None]).astype(np.float32))  # mask is a prefix
        assert not np.any(seg)
        assert np.all(ids[:, 0] == CLS_ID)
        assert np.all(ids[np.arange(n), lengths - 1] == SEP_ID)
        assert np.all(ids[steps >= lengths[:, None]] == PAD_ID)
        content = ids[(steps > 0) & (steps < lengths[:, None] - 1)]
        assert not np.any(content == UNK_ID)
        assert content.min() >= 1000 and content.max() < 30000
        assert lengths.min() >= 8 and lengths.max() <= L
        assert 10 <= np.median(lengths) <= 20 and len(np.unique(lengths)) > 20


def test_raw_text_matches_tokens(raw):
    part = raw["valid"]
    ids = part["text_bert"][:, 0].astype(np.int64)
    for row, length, text in zip(ids, text_lengths(part), part["raw_text"]):
        assert text.split() == [f"w{t}" for t in row[1 : length - 1]]


# --- labels ---------------------------------------------------------------------------


def test_label_granularity_zeros_and_spread(raw):
    y = np.concatenate([raw[s]["regression_labels"] for s in SPLITS]).astype(np.float64)
    assert y.min() >= -3 and y.max() <= 3
    # means of 3, 4 or 5 integer ratings: multiples of 1/60, and mostly of 1/5
    assert np.allclose(y * 60, np.rint(y * 60), atol=1e-4)
    fifths = np.isclose(y * 5, np.rint(y * 5), atol=1e-4)
    assert 0.7 < fifths.mean() < 1.0
    assert np.any(~np.isclose(y * 5, np.rint(y * 5), atol=1e-4) & np.isclose(y * 3, np.rint(y * 3), atol=1e-4))
    assert 0.04 <= np.mean(y == 0) <= 0.12
    assert np.mean(np.abs(y) <= 1.5) > 2 * np.mean(np.abs(y) >= 2.5)  # more mass in the middle
    assert np.mean(np.abs(y) >= 2.5) > 0.02  # but the extremes exist
    assert 1.2 < y.std() < 1.8
    for split in SPLITS:  # both signs well represented everywhere: chance is near 50%
        ys = raw[split]["regression_labels"]
        assert 0.35 < np.mean(ys[ys != 0] > 0) < 0.65, split


def test_annotations_and_classes_follow_the_label(raw):
    for part in raw.values():
        y = part["regression_labels"]
        expected = np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral"))
        assert part["annotations"].tolist() == expected.tolist()
        assert np.array_equal(part["classification_labels"], (np.sign(y) + 1).astype(np.float32))


# --- conversion to a Dataset ----------------------------------------------------------


def test_make_dataset_aligned(raw):
    ds = synth.make_dataset()
    assert (ds.name, ds.variant, ds.kind) == ("synth-mosi", "aligned_50", "mosi")
    assert ds.source == "generated:synth-mosi seed=0"
    for split in SPLITS:
        s, part = ds[split], raw[split]
        assert s.text_ids.dtype == s.text_mask.dtype == np.int64
        assert s.audio_lengths.dtype == s.vision_lengths.dtype == np.int64
        assert s.ids.dtype.kind == "U" and s.raw_text.dtype.kind == "U"
        assert np.array_equal(s.text_ids, part["text_bert"][:, 0].astype(np.int64))
        assert np.array_equal(s.text_lengths, text_lengths(part))
        assert np.array_equal(s.audio_lengths, s.text_lengths) and np.array_equal(s.vision_lengths, s.text_lengths)
        assert np.array_equal(s.labels, part["regression_labels"])
        assert s.ids.tolist() == part["id"].tolist()


def test_make_dataset_unaligned(raw_unaligned):
    ds = synth.make_dataset(seed=5, sizes=(90, 20, 40), audio_len=60, vision_len=70, aligned=False)
    assert ds.variant == "unaligned_50" and ds.source == "generated:synth-mosi seed=5"
    info = ds.info
    assert (info.audio_len, info.vision_len, info.audio_dim, info.vision_dim) == (60, 70, 5, 20)
    for split in SPLITS:
        assert ds[split].audio_lengths.tolist() == raw_unaligned[split]["audio_lengths"]
        assert ds[split].vision_lengths.tolist() == raw_unaligned[split]["vision_lengths"]


# --- end to end: the example submission learns it and degrades under missing data ------


def load_example():
    spec = importlib.util.spec_from_file_location("msabench_example_submission", ROOT / "submissions" / "example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drop(split, r: float, seed: int) -> tuple[Batch, Mask]:
    """Random intra-modality missing at rate r for all three modalities (MMSA/LNLN rule).

    np.random.seed(seed), then one uniform draw per position for T, A, V in turn; a
    position inside the valid length is kept iff u > r; [CLS] and the last valid token
    are always kept; dropped tokens become [UNK], dropped frames zero vectors.
    """
    np.random.seed(seed)
    u = {m: np.random.uniform(size=(len(split), split.seq_len(m))) for m in "TAV"}
    lengths = split.text_lengths
    steps = np.arange(split.seq_len("T"))[None, :]
    protected = (steps == 0) | (steps == lengths[:, None] - 1)
    dropped = (steps < lengths[:, None]) & (u["T"] <= r) & ~protected
    text_ids = np.where(dropped, UNK_ID, split.text_ids)
    frames = {}
    for m, x, lens in (("A", split.audio, split.audio_lengths), ("V", split.vision, split.vision_lengths)):
        gone = (np.arange(x.shape[1])[None, :] < lens[:, None]) & (u[m] <= r)
        frames[m] = np.where(gone[:, :, None], np.float32(0), x)
    batch = Batch(
        ids=split.ids, text_mask=split.text_mask, audio=frames["A"], audio_lengths=split.audio_lengths,
        vision=frames["V"], vision_lengths=split.vision_lengths, text_ids=text_ids,
    )
    mask = Mask(
        text=split.text_mask > 0,
        audio=np.arange(split.audio.shape[1])[None, :] < split.audio_lengths[:, None],
        vision=np.arange(split.vision.shape[1])[None, :] < split.vision_lengths[:, None],
        revealed=False,
    )
    return batch, mask


def non0_acc2(pred, y) -> float:
    keep = y != 0
    return float(np.mean((pred[keep] > 0) == (y[keep] > 0)))


def test_drop_helper_follows_the_rule():
    test = synth.make_dataset(sizes=(10, 10, 30))["test"]
    clean, _ = drop(test, 0.0, 1111)
    assert np.array_equal(clean.text_ids, test.text_ids) and np.array_equal(clean.audio, test.audio)
    full, _ = drop(test, 1.0, 1111)
    lengths = test.text_lengths
    for i in range(len(test)):
        kept = full.text_ids[i, : lengths[i]]
        assert kept[0] == CLS_ID and kept[-1] == SEP_ID and np.all(kept[1:-1] == UNK_ID)
    assert not np.any(full.audio) and not np.any(full.vision)


def test_example_model_learns_and_degrades():
    pytest.importorskip("torch")
    ds = synth.make_dataset()
    model = load_example().build(ds.info)
    model.fit(ds["train"], ds["valid"], 1111)
    test = ds["test"]
    y = test.labels
    acc = {}
    for r in (0.0, 0.9):
        batch, mask = drop(test, r, 1111)
        pred = np.asarray(model.predict(batch, mask), dtype=np.float64)
        assert pred.shape == (len(test),) and np.all(np.isfinite(pred))
        acc[r] = non0_acc2(pred, y)
    assert acc[0.0] > 0.7, acc
    assert acc[0.9] < acc[0.0] - 0.1, acc
    # batch size must not change a sample's score
    batch, mask = drop(test, 0.3, 1111)
    whole = np.asarray(model.predict(batch, mask))
    parts = []
    for start in range(0, len(test), 7):
        sl = slice(start, start + 7)
        sub = Batch(
            ids=batch.ids[sl], text_mask=batch.text_mask[sl], audio=batch.audio[sl],
            audio_lengths=batch.audio_lengths[sl], vision=batch.vision[sl],
            vision_lengths=batch.vision_lengths[sl], text_ids=batch.text_ids[sl],
        )
        parts.append(np.asarray(model.predict(sub, Mask(mask.text[sl], mask.audio[sl], mask.vision[sl], False))))
    assert np.concatenate(parts).tobytes() == whole.tobytes()


# --- unaligned_50: MOSI's real unaligned shapes, with 768-d text features ---------------
# The full variant takes ~2 s and ~0.6 GB to generate, so one module-wide copy is tested.

MOSI_SIZES = (1284, 229, 686)


@pytest.fixture(scope="module")
def full_unaligned():
    return data.load("synth-mosi", "unaligned_50")


def test_unaligned_50_small_keys_shapes_dtypes():
    raw = synth.make_raw(seed=2, sizes=(40, 20, 20), **synth.VARIANTS["unaligned_50"])
    for split, n in zip(SPLITS, (40, 20, 20)):
        part = raw[split]
        assert set(part) == UNALIGNED_KEYS | {"text"}, split
        check_common(part, n, (375, 5), (500, 20))
        assert part["text"].dtype == np.float32 and part["text"].shape == (n, 50, 768)
        assert all(2 <= a <= 374 for a in part["audio_lengths"]) and all(2 <= v <= 499 for v in part["vision_lengths"])


def test_unaligned_50_full_size_via_load(full_unaligned):
    ds = full_unaligned
    assert (ds.name, ds.variant, ds.kind) == ("synth-mosi", "unaligned_50", "mosi")
    info = ds.info
    assert (info.text_len, info.audio_len, info.vision_len) == (50, 375, 500)
    assert (info.audio_dim, info.vision_dim, info.text_feature_dim) == (5, 20, 768)
    assert [len(ds[s]) for s in SPLITS] == list(MOSI_SIZES)
    for split in SPLITS:
        s = ds[split]
        assert s.text_features.dtype == np.float32 and s.text_features.shape == (len(s), 50, 768)
        assert s.text_ids.shape == (len(s), 50)


def test_unaligned_50_lengths_follow_the_words(full_unaligned):
    for split in SPLITS:
        s = full_unaligned[split]
        words = s.text_lengths - 2
        for lengths, padded in ((s.audio_lengths, 375), (s.vision_lengths, 500)):
            assert lengths.min() >= 2 and lengths.max() <= padded - 1
            assert 0.1 * padded < np.median(lengths) < 0.4 * padded  # MOSI-like clips, not padded to the brim
            assert np.corrcoef(lengths, words)[0, 1] > 0.9  # roughly proportional to the number of words


def _subparser(parser, name):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def test_variant_table_and_load():
    assert set(protocols.DATASETS["synth-mosi"]) == set(synth.VARIANTS)
    data_synth = _subparser(_subparser(cli.parser(), "data"), "synth")  # `msabench data synth --variant`
    assert next(a for a in data_synth._actions if a.dest == "variant").choices == list(synth.VARIANTS)
    with pytest.raises(MsabenchError) as e:
        synth.make_dataset(variant="unaligned_39")
    assert "aligned_50, aligned_50_features, unaligned_50" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MsabenchError, match="unaligned_39"):
        data.load("synth-mosi", "unaligned_39")
    aligned = data.load("synth-mosi", "aligned_50")
    assert aligned.variant == "aligned_50" and aligned.info.text_feature_dim is None
    assert aligned.fingerprint == synth.make_dataset().fingerprint
    small = synth.make_dataset(variant="unaligned_50", sizes=(20, 10, 10), audio_len=40)
    assert small.variant == "unaligned_50" and small.info.audio_len == 40 and small.info.text_feature_dim == 768


@pytest.mark.parametrize("kwargs", [{}, {"aligned": False, "audio_len": 375, "vision_len": 500}])
def test_text_features_leave_every_other_array_unchanged(kwargs):
    plain = synth.make_raw(seed=9, sizes=(120, 30, 50), **kwargs)
    featured = synth.make_raw(seed=9, sizes=(120, 30, 50), text_feature_dim=64, **kwargs)
    for split in SPLITS:
        assert set(featured[split]) == set(plain[split]) | {"text"}
        for key in plain[split]:
            assert same(plain[split][key], featured[split][key]), (split, key)
    other_seed = synth.make_raw(seed=10, sizes=(120, 30, 50), text_feature_dim=64, **kwargs)
    assert not same(featured["test"]["text"], other_seed["test"]["text"])


def test_text_features_zero_exactly_on_padding(full_unaligned):
    for split in SPLITS:
        s = full_unaligned[split]
        pad = s.text_mask == 0
        assert pad.any() and not np.any(s.text_features[pad])
        assert np.all(np.abs(s.text_features[~pad]).sum(1) > 0)


def test_same_word_is_closer_than_another_word(full_unaligned):
    s = full_unaligned["test"]
    real = s.text_mask > 0
    feats, ids = s.text_features[real], s.text_ids[real]
    order = np.argsort(ids, kind="stable")
    repeat = ids[order[1:]] == ids[order[:-1]]
    same_a, same_b = order[:-1][repeat], order[1:][repeat]  # every repeated id, [CLS]/[SEP] included
    a, b = np.random.default_rng(0).integers(0, len(ids), (2, 20_000))
    a, b = a[ids[a] != ids[b]], b[ids[a] != ids[b]]
    assert len(same_a) > 1000 and len(a) > 1000
    same_dist = np.linalg.norm(feats[same_a] - feats[same_b], axis=1)
    other_dist = np.linalg.norm(feats[a] - feats[b], axis=1)
    assert same_dist.max() < other_dist.min()  # context noise is small next to word identity
    cls, sep = feats[ids == CLS_ID], feats[ids == SEP_ID]
    assert np.linalg.norm(cls[0] - sep[0]) > 5 * np.linalg.norm(cls[0] - cls[1])  # own vectors


def test_text_features_carry_the_sentiment(full_unaligned):
    """Ridge regression on mean-pooled features beats predicting the training mean."""

    def pooled(s):
        m = s.text_mask[:, :, None].astype(np.float64)
        return np.c_[(s.text_features * m).sum(1) / m.sum(1), np.ones(len(s))]

    train, test = full_unaligned["train"], full_unaligned["test"]
    x = pooled(train)
    w = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ train.labels.astype(np.float64))
    ridge_mae = np.abs(pooled(test) @ w - test.labels).mean()
    constant_mae = np.abs(train.labels.mean() - test.labels).mean()
    assert ridge_mae < 0.8 * constant_mae, (ridge_mae, constant_mae)


def test_protocol_drops_token_ids_and_features_together(full_unaligned):
    p = protocols.load("synth-unaligned-intra")
    assert (p.dataset, p.variant, p.kind, p.split, p.mask_convention) == (
        "synth-mosi", "unaligned_50", "intra", "test", "mmsa")
    assert p.seeds == (1111, 1112, 1113) and p.primary_metric == "Non0_acc_2" and p.aggregation == ("mean", "area")
    assert [c.rates for c in p.conditions] == [(r / 10, r / 10, r / 10) for r in range(10)]
    s = full_unaligned[p.split]
    obs = masking.observed(p, s, p.seeds[0])["r=0.5"]
    batch, _ = masking.corrupt(s, obs, slice(None), p.reveal_mask)
    real = s.text_mask > 0
    unk = batch.text_ids == UNK_ID
    zeroed = real & ~np.any(batch.text_features, axis=2)
    assert np.array_equal(unk, zeroed) and np.array_equal(unk, real & ~obs.text)
    droppable = real & ~masking.special_tokens(s.text_mask)
    assert 0.45 < unk.sum() / droppable.sum() < 0.55 and not np.any(unk & ~droppable)
    assert np.array_equal(batch.text_ids[~unk], s.text_ids[~unk])
    assert batch.text_features[~unk].tobytes() == s.text_features[~unk].tobytes()


# --- aligned_50_features: aligned_50 plus MMSA's 768-d text features ---------------------


def test_aligned_50_features_is_aligned_50_plus_text():
    plain = synth.make_raw(seed=4, sizes=(40, 20, 20), **synth.VARIANTS["aligned_50"])
    featured = synth.make_raw(seed=4, sizes=(40, 20, 20), **synth.VARIANTS["aligned_50_features"])
    for split, n in zip(SPLITS, (40, 20, 20)):
        assert set(featured[split]) == set(plain[split]) | {"text"}, split
        assert all(same(plain[split][k], featured[split][k]) for k in plain[split]), split
        assert featured[split]["text"].dtype == np.float32 and featured[split]["text"].shape == (n, 50, 768)
    ds = synth.make_dataset(variant="aligned_50_features", sizes=(40, 20, 20))
    assert ds.variant == "aligned_50_features" and ds.info.text_feature_dim == 768 and ds.info.audio_len == 50
    reshaped = synth.make_dataset(variant="aligned_50_features", sizes=(40, 20, 20),
                                  text_len=30, audio_len=30, vision_len=30)
    assert reshaped.variant == "aligned_30"


def test_features_protocols_drop_what_synth_protocols_drop():
    """synth-features-* see synth-*'s masks; a dropped token loses its id and its feature vector."""
    plain = data.load("synth-mosi", "aligned_50")["test"]
    featured = data.load("synth-mosi", "aligned_50_features")["test"]
    for name in ("intra", "inter"):
        p, pf = protocols.load(f"synth-{name}"), protocols.load(f"synth-features-{name}")
        assert pf.variant == "aligned_50_features" and pf.conditions == p.conditions and pf.seeds == p.seeds
        for seed in p.seeds:
            obs, obs_f = masking.observed(p, plain, seed), masking.observed(pf, featured, seed)
            assert list(obs) == list(obs_f)
            for cond in obs:
                for m in ("text", "audio", "vision"):
                    assert np.array_equal(getattr(obs[cond], m), getattr(obs_f[cond], m)), (name, seed, cond, m)
    intra = protocols.load("synth-features-intra")
    batch, _ = masking.corrupt(featured, masking.observed(intra, featured, 1111)["r=0.5"], slice(None), False)
    unk = batch.text_ids == UNK_ID
    assert unk.any() and not np.any(batch.text_features[unk])
    assert batch.text_features[~unk].tobytes() == featured.text_features[~unk].tobytes()


def test_a_features_file_on_disk_reads_as_the_features_variant(tmp_path):
    """MMSA's own aligned_50.pkl carries `text` features: read for aligned_50_features, it is accepted."""
    raw = synth.make_raw(seed=4, sizes=(40, 20, 20), **{**synth.VARIANTS["aligned_50"], "text_feature_dim": 16})
    ds = data.load("synth-mosi", "aligned_50_features", data=write_pickle(tmp_path / "aligned_50.pkl", raw))
    assert ds.variant == "aligned_50_features" and ds.info.text_feature_dim == 16
    assert np.array_equal(ds["test"].text_features, raw["test"]["text"])


# --- synth-sims: the same process labelled as CH-SIMS -----------------------------------


@pytest.fixture(scope="module")
def raw_sims():
    return synth.make_raw(labels="sims")


def test_sims_labels_leave_every_input_unchanged(raw, raw_sims):
    for split in SPLITS:
        for key in ("id", "raw_text", "text_bert", "audio", "vision"):
            assert same(raw[split][key], raw_sims[split][key]), (split, key)
        assert "regression_labels_T" not in raw[split]


def test_sims_labels_are_means_of_five_polarities(raw, raw_sims):
    for split in SPLITS:
        part = raw_sims[split]
        for key in ("regression_labels", "regression_labels_T", "regression_labels_A", "regression_labels_V"):
            y = part[key]
            assert y.dtype == np.float32 and y.shape == (len(part["id"]),), key
            assert y.min() >= -1 and y.max() <= 1, key
            assert np.allclose(y * 5, np.rint(y * 5), atol=1e-5), key  # multiples of 0.2
            assert 0.3 < np.mean(y[y != 0] > 0) < 0.7, (split, key)  # both signs, everywhere
        y_mosi, y = raw[split]["regression_labels"], part["regression_labels"]
        agree = np.sign(y_mosi[(y != 0) & (y_mosi != 0)]) == np.sign(y[(y != 0) & (y_mosi != 0)])
        assert agree.mean() > 0.95, split  # the same raters: the polarity of the MOSI-style label
        expected = np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral"))
        assert part["annotations"].tolist() == expected.tolist()
    y = np.concatenate([raw_sims[s]["regression_labels"] for s in SPLITS])
    assert len(np.unique(y)) == 11 and 0.03 < np.mean(y == 0) < 0.15


def test_sims_unimodal_labels_follow_what_each_modality_expresses(raw_sims):
    """T is rated from the words, A and V from voice and face: where clips are sarcastic (step 2),
    A and V agree with each other more than either agrees with T, and each follows M."""
    lab = {m: np.concatenate([raw_sims[s][f"regression_labels_{m}"] for s in SPLITS]) for m in "TAV"}
    y = np.concatenate([raw_sims[s]["regression_labels"] for s in SPLITS])

    def corr(a, b):
        return np.corrcoef(a, b)[0, 1]

    assert corr(lab["A"], lab["V"]) > max(corr(lab["A"], lab["T"]), corr(lab["V"], lab["T"])) + 0.05
    assert not np.array_equal(lab["A"], lab["V"])  # their own raters
    assert all(corr(lab[m], y) > 0.6 for m in "TAV")


def test_synth_sims_dataset_and_load():
    ds = data.load("synth-sims", "aligned_50_features")
    assert (ds.name, ds.variant, ds.kind) == ("synth-sims", "aligned_50_features", "sims")
    assert ds.info.unimodal_labels and ds.info.label_range == (-1.0, 1.0) and ds.info.text_feature_dim == 768
    assert tuple(len(ds[s]) for s in SPLITS) == synth.SIMS_SIZES
    mosi = synth.make_dataset(variant="aligned_50_features", sizes=synth.SIMS_SIZES)
    assert ds.fingerprint != mosi.fingerprint
    assert np.array_equal(ds["test"].text_features, mosi["test"].text_features)
    with pytest.raises(MsabenchError, match="no generated dataset 'synth-x'"):
        synth.make_dataset(name="synth-x")
    with pytest.raises(MsabenchError, match="labels must be one of mosi, sims, got 'iemocap'"):
        synth.make_raw(labels="iemocap")


def test_synth_sims_file_reads_as_ch_sims(tmp_path):
    """`msabench data synth --dataset synth-sims` writes a pickle with CH-SIMS's keys; read back, it is the
    in-process dataset, unimodal labels included."""
    out = tmp_path / "sims.pkl"
    assert cli.main(["data", "synth", "--dataset", "synth-sims", "--out", str(out)]) == 0
    ds = data.load("synth-sims", "aligned_50", data=out)
    ref = synth.make_dataset(name="synth-sims")
    assert ds.kind == "sims" and ds.fingerprint == ref.fingerprint
    assert np.array_equal(ds["valid"].extra_labels["T"], ref["valid"].extra_labels["T"])


def test_synth_sims_protocols_mask_what_synth_features_masks():
    """synth-sims-* are synth-features-*'s conditions and seeds, scored with CH-SIMS's metrics."""
    for name in ("intra", "inter"):
        p, ps = protocols.load(f"synth-features-{name}"), protocols.load(f"synth-sims-{name}")
        assert (ps.dataset, ps.variant, ps.primary_metric) == ("synth-sims", "aligned_50_features", "Mult_acc_2")
        assert ps.conditions == p.conditions and ps.seeds == p.seeds and ps.mask_convention == p.mask_convention
