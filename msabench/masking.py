"""Which tokens/frames/modalities a model gets to see, for every (condition, seed).

Every position inside a sample's valid length gets one uniform draw u per (seed,
modality); under drop rate r the position is kept iff u > r. One draw serves every
rate, so masks for one seed are nested across rates. Two conventions draw u:

- `hash` (default): u is a counter-based hash of (seed, modality, sample id,
  position). A sample's mask depends on nothing else: not on batch size, order,
  worker or model, and not on which other samples are in the split.
- `mmsa`: `np.random.seed(seed)` then `np.random.uniform(size=(N, L))` over the split
  in file order, separately per modality: the community's `generate_m`, so numbers are
  comparable with published ones (it depends on file order by construction).

Text given as token ids keeps [CLS] (position 0) and the last valid token ([SEP])
whatever r is. Text given only as features has no special tokens: every position can be
dropped (so a length-1 utterance-level text vector is dropped with probability r, like
an audio/vision one). A dropped token becomes [UNK]; dropped frames (and text feature
vectors) become zero vectors; attention masks and lengths are left as they were.
Inter-modality conditions drop whole modalities.

The seed that draws u is the protocol's mask seed for the training seed (`Protocol.mask_seed`):
the training seed itself by default; LNLN's protocol files fix it at 1111 for all three
training seeds, as LNLN's evaluation does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from msabench.data.core import MODALITIES, UNK_ID, Split, hash_array
from msabench.interface import Batch, Mask
from msabench.protocols import Condition, Protocol

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_RANDOM_INTER_STREAM = 3  # modality streams are 0, 1, 2


@dataclass(frozen=True, eq=False)
class Observed:
    """Observed positions of a whole split under one (condition, seed); True = observed."""

    text: np.ndarray  # [N, L] bool
    audio: np.ndarray  # [N, Ta] bool
    vision: np.ndarray  # [N, Tv] bool

    def by_modality(self) -> dict[str, np.ndarray]:
        return {"T": self.text, "A": self.audio, "V": self.vision}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective avalanche on uint64 (wraps on overflow by design)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def id_keys(ids: np.ndarray) -> np.ndarray:
    """A uint64 per sample id (FNV-1a over its UTF-8 bytes), vectorised over samples."""
    raw = np.char.encode(np.asarray(ids, dtype=str), "utf-8")
    width = raw.dtype.itemsize
    h = np.full(raw.shape[0], _FNV_OFFSET, dtype=np.uint64)
    if width == 0 or raw.shape[0] == 0:
        return h
    cols = raw.view(np.uint8).reshape(raw.shape[0], width)
    with np.errstate(over="ignore"):
        for j in range(width):  # loop over byte columns, not samples
            b = cols[:, j].astype(np.uint64)
            stepped = (h ^ b) * _FNV_PRIME
            h = np.where(b != 0, stepped, h)  # NUL padding never counts
    return h


def _stream_keys(ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        k = _mix(id_keys(ids) ^ _mix(np.uint64(seed) * _GOLDEN + np.uint64(1)))
        return _mix(k ^ _mix(np.uint64(stream + 1) * _GOLDEN))


def _to_unit(x: np.ndarray) -> np.ndarray:
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)  # 53 bits -> [0, 1)


def draws(split: Split, seed: int, convention: str) -> dict[str, np.ndarray]:
    """One uniform in [0, 1) per (sample, position) for each modality: float64 [N, L_m]."""
    n = len(split)
    out = {}
    for stream, m in enumerate(MODALITIES):
        length = split.seq_len(m)
        if convention == "mmsa":
            out[m] = np.random.RandomState(seed).uniform(size=(n, length))
        elif convention == "hash":
            keys = _stream_keys(split.ids, seed, stream)
            with np.errstate(over="ignore"):
                pos = np.arange(length, dtype=np.uint64) * _GOLDEN
                out[m] = _to_unit(_mix(keys[:, None] + pos[None, :]))
        else:
            raise ValueError(f"unknown mask convention {convention!r}")
    return out


def modality_draws(split: Split, seed: int, convention: str) -> np.ndarray:
    """One uniform per (sample, modality) for random-inter missing: float64 [N, 3]."""
    if convention == "mmsa":
        return np.random.RandomState(seed).uniform(size=(len(split), 3))
    keys = _stream_keys(split.ids, seed, _RANDOM_INTER_STREAM)
    with np.errstate(over="ignore"):
        return _to_unit(_mix(keys[:, None] + np.arange(3, dtype=np.uint64)[None, :] * _GOLDEN))


def valid(split: Split, rows: slice | np.ndarray = slice(None)) -> dict[str, np.ndarray]:
    """Positions inside each sample's valid length (the padding mask), per modality."""
    out = {"T": split.text_mask[rows].astype(bool)}
    for m in ("A", "V"):
        out[m] = np.arange(split.seq_len(m))[None, :] < split.lengths(m)[rows][:, None]
    return out


def special_tokens(text_mask: np.ndarray) -> np.ndarray:
    """[N, L] bool: [CLS] (position 0) and the last valid token ([SEP]), never dropped."""
    lengths = text_mask.sum(axis=1)
    out = np.zeros(text_mask.shape, dtype=bool)
    rows = np.flatnonzero(lengths > 0)
    out[rows, 0] = True
    out[rows, lengths[rows] - 1] = True
    return out


def drop(split: Split, u: dict[str, np.ndarray], rates: dict, pads: dict | None = None) -> Observed:
    """Keep a position iff u > r; r per modality, a number or one per sample ([N] array).

    The one place the intra-modality rule lives: protocols call it with fixed rates, the
    training recipe with per-sample random rates.
    """
    pads = pads if pads is not None else valid(split)
    per = {}
    for m in MODALITIES:
        r = np.asarray(rates[m], dtype=np.float64)
        per[m] = (u[m] > (r[:, None] if r.ndim == 1 else r)) & pads[m]
    if split.text_ids is not None:  # [CLS]/[SEP] exist only where there are token ids
        per["T"] |= special_tokens(split.text_mask) & pads["T"]
    return Observed(per["T"], per["A"], per["V"])


def observed(protocol: Protocol, split: Split, seed: int) -> dict[str, Observed]:
    """Observed masks of the whole split for every condition of `protocol`, for training seed `seed`
    (drawn with the protocol's mask seed for it)."""
    seed = protocol.mask_seed(seed)
    pads = valid(split)
    out: dict[str, Observed] = {}
    if protocol.kind == "intra":
        u = draws(split, seed, protocol.mask_convention)
        for c in protocol.conditions:
            out[c.name] = drop(split, u, dict(zip(MODALITIES, c.rates)), pads)
    elif protocol.kind == "inter":
        for c in protocol.conditions:
            per = {m: pads[m] & (m in c.available) for m in MODALITIES}
            out[c.name] = Observed(per["T"], per["A"], per["V"])
    else:  # random-inter
        u = modality_draws(split, seed, protocol.mask_convention)
        for c in protocol.conditions:
            present = u >= c.rates[0]
            nothing = ~present.any(axis=1)
            present[nothing, np.argmax(u[nothing], axis=1)] = True  # keep the least-missing modality
            per = {m: pads[m] & present[:, [i]] for i, m in enumerate(MODALITIES)}
            out[c.name] = Observed(per["T"], per["A"], per["V"])
    return out


def _zero_dropped(frames: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """float32 copy of [B, T, D] frames with the frames where `keep` is False set to zero."""
    return np.multiply(frames, keep[..., None], dtype=np.float32)


def corrupt(split: Split, obs: Observed, rows: slice | np.ndarray, reveal: bool) -> tuple[Batch, Mask]:
    """The model's inputs for `rows` under `obs`: fills applied, labels left out."""
    pads = valid(split, rows)
    t_obs, a_obs, v_obs = obs.text[rows], obs.audio[rows], obs.vision[rows]
    text_ids = text_features = None
    if split.text_ids is not None:
        keep_t = t_obs | special_tokens(pads["T"]) | ~pads["T"]
        text_ids = np.where(keep_t, split.text_ids[rows], UNK_ID).astype(np.int64, copy=False)
    if split.text_features is not None:
        text_features = _zero_dropped(split.text_features[rows], t_obs | ~pads["T"])
    batch = Batch(
        ids=split.ids[rows],
        text_mask=split.text_mask[rows].astype(np.int64, copy=False),
        audio=_zero_dropped(split.audio[rows], a_obs),
        audio_lengths=split.audio_lengths[rows].astype(np.int64, copy=False),
        vision=_zero_dropped(split.vision[rows], v_obs),
        vision_lengths=split.vision_lengths[rows].astype(np.int64, copy=False),
        text_ids=text_ids,
        text_features=text_features,
    )
    if reveal:
        mask = Mask(text=t_obs.copy(), audio=a_obs.copy(), vision=v_obs.copy(), revealed=True)
    else:
        mask = Mask(text=pads["T"], audio=pads["A"], vision=pads["V"], revealed=False)
    return batch, mask


def fingerprint(protocol: Protocol, split: Split, seed: int, masks: dict[str, Observed] | None = None) -> str:
    """sha256 over the ids and every observed mask of one seed: what makes two runs paired."""
    masks = masks if masks is not None else observed(protocol, split, seed)
    return _hash(split, {protocol.mask_seed(seed): masks})


def _hash(split: Split, per_seed: dict[int, dict[str, Observed]]) -> str:
    h = hashlib.sha256()
    hash_array(h, "ids", split.ids)
    for seed, masks in per_seed.items():
        for name, obs in masks.items():
            for m, arr in obs.by_modality().items():
                hash_array(h, f"{m}/{name}/{seed}", arr)
    return h.hexdigest()


def export(protocol: Protocol, split: Split) -> tuple[dict[str, np.ndarray], str]:
    """Every mask of the protocol as `{"M/condition/mask seed": bool [N, L]}` plus `ids`, and their hash
    (one set per distinct mask seed: LNLN's protocol has one for its three training seeds)."""
    per_seed = {}
    for seed in protocol.seeds:
        mask_seed = protocol.mask_seed(seed)
        if mask_seed not in per_seed:
            per_seed[mask_seed] = observed(protocol, split, seed)
    arrays: dict[str, np.ndarray] = {"ids": np.asarray(split.ids, dtype=str)}
    for seed, masks in per_seed.items():
        for name, obs in masks.items():
            for m, arr in obs.by_modality().items():
                arrays[f"{m}/{name}/{seed}"] = arr
    return arrays, _hash(split, per_seed)


__all__ = ["Observed", "observed", "corrupt", "draws", "valid", "fingerprint", "export", "Condition"]
