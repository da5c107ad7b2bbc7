import numpy as np
import pytest

from msabench import masking, protocols
from msabench.data.core import UNK_ID

from conftest import small_dataset


def proto(kind="intra", convention="hash", rates=(0.0, 0.3, 0.6, 0.9), seeds=(7, 8), reveal=False, modalities="TAV",
          mask_seeds=None):
    missing = {"kind": kind}
    if kind == "intra":
        missing.update(rates=list(rates), modalities=list(modalities))
    elif kind == "random-inter":
        missing.update(rates=list(rates))
    data = {"name": "t", "version": 1, "dataset": "synth-mosi", "seeds": list(seeds), "primary_metric": "MAE",
            "mask_convention": convention, "reveal_mask": reveal, "missing": missing}
    if mask_seeds is not None:
        data["mask_seeds"] = list(mask_seeds)
    return protocols.parse(data, "test")


def reference_generate_m(ids_arr, input_mask, input_len, missing_rate, missing_seed, mode):
    """Per-sample transcription of the community's `generate_m` (MMSA TFR-Net path / LNLN)."""
    if mode == "text":
        input_len = np.argmin(input_mask, axis=1)
    else:
        input_mask = np.array([np.array([1] * length + [0] * (ids_arr.shape[1] - length)) for length in input_len])
    np.random.seed(missing_seed)
    missing_mask = (np.random.uniform(size=input_mask.shape) > missing_rate) * input_mask
    if mode == "text":
        for i, instance in enumerate(missing_mask):
            instance[0] = instance[input_len[i] - 1] = 1
        modality_m = missing_mask * ids_arr + (100 * np.ones_like(ids_arr)) * (input_mask - missing_mask)
    else:
        modality_m = missing_mask.reshape(ids_arr.shape[0], ids_arr.shape[1], 1) * ids_arr
    return modality_m, missing_mask


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.9])
def test_mmsa_convention_reproduces_generate_m(unaligned, rate):
    split = unaligned["test"]
    p = proto(convention="mmsa", rates=(rate,), seeds=(1111,))
    obs = masking.observed(p, split, 1111)[f"r={rate:g}"]
    batch, _ = masking.corrupt(split, obs, slice(None), reveal=False)
    ref_t, ref_mt = reference_generate_m(split.text_ids, split.text_mask, None, rate, 1111, "text")
    assert np.array_equal(batch.text_ids, ref_t)
    assert np.array_equal(obs.text, ref_mt.astype(bool))
    for m, arr, lens in (("audio", split.audio, split.audio_lengths), ("vision", split.vision, split.vision_lengths)):
        ref, ref_m = reference_generate_m(arr, None, lens, rate, 1111, m)
        assert np.array_equal(getattr(batch, m), ref.astype(np.float32))
        assert np.array_equal(getattr(obs, m), ref_m.astype(bool))


def test_hash_masks_depend_only_on_sample_id(dataset):
    split = dataset["test"]
    p = proto()
    full = masking.observed(p, split, 7)
    perm = np.random.default_rng(0).permutation(len(split))[:17]
    part = masking.observed(p, split.select(perm), 7)
    for c in p.conditions:
        for m in "TAV":
            assert np.array_equal(part[c.name].by_modality()[m], full[c.name].by_modality()[m][perm])
    other_seed = masking.observed(p, split, 8)
    assert not np.array_equal(other_seed["r=0.6"].text, full["r=0.6"].text)


def test_id_keys_are_width_independent():
    a = masking.id_keys(np.array(["abc$_$1"]))
    b = masking.id_keys(np.array(["abc$_$1", "a-much-longer-id$_$12"]))
    assert a[0] == b[0] and b[0] != b[1]


@pytest.mark.parametrize("convention", ["hash", "mmsa"])
def test_masks_are_nested_across_rates_and_respect_padding(dataset, convention):
    split = dataset["test"]
    p = proto(convention=convention)
    obs = masking.observed(p, split, 7)
    pads = masking.valid(split)
    names = [c.name for c in p.conditions]
    for m in "TAV":
        for lo, hi in zip(names, names[1:]):
            assert not np.any(obs[hi].by_modality()[m] & ~obs[lo].by_modality()[m])
        for name in names:
            assert not np.any(obs[name].by_modality()[m] & ~pads[m])
        assert np.array_equal(obs["r=0"].by_modality()[m], pads[m])


def test_drop_fraction_matches_rate():
    split = small_dataset(sizes=(10, 10, 600))["test"]
    obs = masking.observed(proto(rates=(0.3, 0.6)), split, 7)
    pads = masking.valid(split)
    for r in (0.3, 0.6):
        o = obs[f"r={r:g}"]
        for m in "AV":
            frac = 1 - o.by_modality()[m][pads[m]].mean()
            assert abs(frac - r) < 0.02


def test_special_tokens_always_kept(dataset):
    split = dataset["test"]
    obs = masking.observed(proto(rates=(0.9, 1.0)), split, 7)["r=1"]
    batch, _ = masking.corrupt(split, obs, slice(None), reveal=False)
    lengths = split.text_lengths
    rows = np.arange(len(split))
    assert np.all(batch.text_ids[:, 0] == 101)
    assert np.all(batch.text_ids[rows, lengths - 1] == 102)
    inner = split.text_mask.astype(bool).copy()
    inner[:, 0] = False
    inner[rows, lengths - 1] = False
    assert np.all(batch.text_ids[inner] == UNK_ID)
    assert np.all(batch.text_ids[~split.text_mask.astype(bool)] == 0)
    assert not batch.audio.any() and not batch.vision.any()


def test_corrupt_fills_and_keeps_masks_and_lengths(unaligned):
    split = unaligned["test"]
    obs = masking.observed(proto(rates=(0.5,)), split, 7)["r=0.5"]
    batch, mask = masking.corrupt(split, obs, slice(3, 20), reveal=False)
    rows = slice(3, 20)
    assert np.array_equal(batch.text_mask, split.text_mask[rows])
    assert np.array_equal(batch.audio_lengths, split.audio_lengths[rows])
    dropped_t = split.text_mask[rows].astype(bool) & ~obs.text[rows]
    assert np.all(batch.text_ids[dropped_t] == UNK_ID)
    assert np.array_equal(batch.text_ids[obs.text[rows]], split.text_ids[rows][obs.text[rows]])
    assert not batch.audio[~obs.audio[rows]].any()
    assert np.array_equal(batch.audio[obs.audio[rows]], split.audio[rows][obs.audio[rows]])
    assert not hasattr(batch, "labels")
    # not revealed: the model sees padding only
    assert np.array_equal(mask.text, split.text_mask[rows].astype(bool)) and not mask.revealed
    _, shown = masking.corrupt(split, obs, slice(3, 20), reveal=True)
    assert shown.revealed and np.array_equal(shown.audio, obs.audio[rows])


def test_inter_sets(unaligned):
    split = unaligned["test"]
    obs = masking.observed(proto(kind="inter"), split, 1)
    assert list(obs) == ["T", "A", "V", "TA", "TV", "AV", "TAV"]
    batch, mask = masking.corrupt(split, obs["V"], slice(None), reveal=True)
    assert not batch.audio.any()
    assert np.array_equal(batch.vision, split.vision)
    inner = split.text_mask.astype(bool) & ~masking.special_tokens(split.text_mask)
    assert np.all(batch.text_ids[inner] == UNK_ID)
    assert np.array_equal(mask.modalities(), np.tile([False, False, True], (len(split), 1)))


def test_random_inter_keeps_one_modality_and_nests():
    split = small_dataset(sizes=(10, 10, 500))["test"]
    p = proto(kind="random-inter", rates=(0.2, 0.5, 0.9))
    obs = masking.observed(p, split, 5)
    prev = None
    for c in p.conditions:
        present = np.stack([obs[c.name].by_modality()[m].any(1) for m in "TAV"], 1)
        assert present.any(1).all()
        if c.rates[0] == 0.5:
            assert abs((~present).mean() - 0.5) < 0.05
        if prev is not None:
            assert not np.any(present & ~prev)
        prev = present


def test_export_keys_shapes_and_hash(dataset):
    split = dataset["test"]
    p = proto(seeds=(7,))
    arrays, digest = masking.export(p, split)
    assert set(arrays) == {"ids"} | {f"{m}/{c.name}/7" for m in "TAV" for c in p.conditions}
    assert arrays["A/r=0.3/7"].shape == split.audio.shape[:2] and arrays["A/r=0.3/7"].dtype == bool
    assert digest == masking.export(p, split)[1] == masking.fingerprint(p, split, 7)
    assert digest != masking.export(proto(seeds=(8,)), split)[1]


@pytest.mark.parametrize("convention", ["hash", "mmsa"])
def test_a_fixed_mask_seed_gives_every_training_seed_the_same_masks(dataset, convention):
    """LNLN's protocol: three checkpoints, one set of test masks (mask seed 1111)."""
    split = dataset["test"]
    fixed = proto(convention=convention, seeds=(1111, 1112, 1113), mask_seeds=[1111])
    varied = proto(convention=convention, seeds=(1111, 1112, 1113))
    own = masking.observed(varied, split, 1111)
    for seed in fixed.seeds:
        got = masking.observed(fixed, split, seed)
        assert all(np.array_equal(got[c].text, own[c].text) and np.array_equal(got[c].audio, own[c].audio)
                   for c in got)
        assert masking.fingerprint(fixed, split, seed) == masking.fingerprint(varied, split, 1111)
    assert masking.fingerprint(varied, split, 1112) != masking.fingerprint(varied, split, 1111)
    arrays, digest = masking.export(fixed, split)  # one set of masks, not three copies
    assert {k.rsplit("/", 1)[1] for k in arrays if k != "ids"} == {"1111"}
    assert digest == masking.export(proto(convention=convention, seeds=(1111,)), split)[1]

