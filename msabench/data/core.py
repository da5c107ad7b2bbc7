"""In-memory form of an MSA dataset: one `Split` per partition, all numpy.

Every loader (MMSA pickle, Hugging Face folder, synthetic generator) produces these
objects, so protocols, masks and models never care where the data came from.
Arrays follow the MMSA conventions: text as BERT-style ids with an attention mask
(and/or token features), audio and vision as [N, T, D] frames with valid lengths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from msabench.data import registry
from msabench.errors import MsabenchError

MODALITIES = ("T", "A", "V")
MODALITY_NAMES = {"T": "text", "A": "audio", "V": "vision"}
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
SPLITS = ("train", "valid", "test")




def kind_of(name: str) -> str:
    """The metric family of a dataset, from its name (`registry`)."""
    return registry.kind(name)


@dataclass(frozen=True, eq=False)
class Split:
    """One partition (train/valid/test) of a dataset, in file order.

    `text_mask` is the attention mask; `audio_lengths`/`vision_lengths` count the
    valid frames (for aligned files they equal the text length, as MMSA does).
    """

    name: str
    ids: np.ndarray  # [N] str
    labels: np.ndarray  # [N] float32
    text_mask: np.ndarray  # [N, L] int64, 1 = real token
    audio: np.ndarray  # [N, Ta, Da] float32
    audio_lengths: np.ndarray  # [N] int64
    vision: np.ndarray  # [N, Tv, Dv] float32
    vision_lengths: np.ndarray  # [N] int64
    text_ids: np.ndarray | None = None  # [N, L] int64 BERT ids
    text_features: np.ndarray | None = None  # [N, L, Dt] float32
    raw_text: np.ndarray | None = None  # [N] str
    extra_labels: Mapping[str, np.ndarray] = field(default_factory=dict)  # SIMS T/A/V
    labelled: bool = True  # False: an evaluation split as models get it, labels NaN

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def text_lengths(self) -> np.ndarray:
        return self.text_mask.sum(axis=1).astype(np.int64)

    def lengths(self, modality: str) -> np.ndarray:
        return {"T": self.text_lengths, "A": self.audio_lengths, "V": self.vision_lengths}[modality]

    def seq_len(self, modality: str) -> int:
        return {"T": self.text_mask.shape[1], "A": self.audio.shape[1], "V": self.vision.shape[1]}[modality]

    def select(self, index: np.ndarray | slice) -> "Split":
        """A new Split holding rows `index` (a slice, int array or boolean array)."""

        def take(a):
            return None if a is None else a[index]

        return Split(
            name=self.name,
            ids=self.ids[index],
            labels=self.labels[index],
            text_mask=self.text_mask[index],
            audio=self.audio[index],
            audio_lengths=self.audio_lengths[index],
            vision=self.vision[index],
            vision_lengths=self.vision_lengths[index],
            text_ids=take(self.text_ids),
            text_features=take(self.text_features),
            raw_text=take(self.raw_text),
            extra_labels={k: v[index] for k, v in self.extra_labels.items()},
            labelled=self.labelled,
        )

    def without_labels(self) -> "Split":
        """The split as a model may see it at evaluation: inputs and ids, every label NaN (none kept)."""
        return replace(self, labels=np.full(len(self), np.nan, dtype=np.float32), extra_labels={}, labelled=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (None fields left out); used for hashing and export."""
        out = {
            "ids": self.ids,
            "labels": self.labels,
            "text_mask": self.text_mask,
            "audio": self.audio,
            "audio_lengths": self.audio_lengths,
            "vision": self.vision,
            "vision_lengths": self.vision_lengths,
        }
        for key in ("text_ids", "text_features", "raw_text"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key, value in self.extra_labels.items():
            out[f"labels_{key}"] = value
        return out


@dataclass(frozen=True)
class DatasetInfo:
    """What `build(info)` learns about the data: shapes and label family, never labels."""

    name: str
    variant: str
    kind: str  # "mosi" (MOSI/MOSEI metrics, labels in [-3, 3]) or "sims" ([-1, 1])
    text_len: int
    audio_len: int
    audio_dim: int
    vision_len: int
    vision_dim: int
    has_text_ids: bool
    text_feature_dim: int | None
    label_range: tuple[float, float]
    unimodal_labels: bool = False  # T, A and V labels too (CH-SIMS): MMSA's multi-task models train on them


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: its splits, where it came from, and a content fingerprint."""

    name: str  # "mosi", "mosei", "sims", "synth-mosi", ...
    variant: str  # "aligned_50", "unaligned_50", "unaligned_39"
    kind: str  # metric family: "mosi" or "sims"
    splits: Mapping[str, Split]
    source: str  # path, folder or "generated:..." description
    nonfinite_replaced: int = 0

    def __post_init__(self):
        check_dataset(self)

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise MsabenchError(f"dataset {self.name} ({self.source}) has no split {split!r}; it has {sorted(self.splits)}")
        return self.splits[split]

    def for_models(self, evaluation: tuple[str, ...] | set[str]) -> "Dataset":
        """The dataset as models get it: the `evaluation` splits without their labels (Split.without_labels)."""
        splits = {k: (v.without_labels() if k in evaluation else v) for k, v in self.splits.items()}
        return Dataset(name=self.name, variant=self.variant, kind=self.kind, splits=splits, source=self.source,
                       nonfinite_replaced=self.nonfinite_replaced)

    @property
    def label_range(self) -> tuple[float, float]:
        return registry.LABEL_RANGE[self.kind]

    @property
    def info(self) -> DatasetInfo:
        s = self.splits["train"] if "train" in self.splits else next(iter(self.splits.values()))
        return DatasetInfo(
            name=self.name,
            variant=self.variant,
            kind=self.kind,
            text_len=int(s.text_mask.shape[1]),
            audio_len=int(s.audio.shape[1]),
            audio_dim=int(s.audio.shape[2]),
            vision_len=int(s.vision.shape[1]),
            vision_dim=int(s.vision.shape[2]),
            has_text_ids=s.text_ids is not None,
            text_feature_dim=None if s.text_features is None else int(s.text_features.shape[2]),
            label_range=self.label_range,
            unimodal_labels=all(m in s.extra_labels for m in "TAV"),
        )

    @property
    def fingerprint(self) -> str:
        """sha256 over every array of every split (names, dtypes, shapes and bytes)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256()
            h.update(f"{self.name}|{self.variant}|{self.kind}".encode())
            for split in sorted(self.splits):
                for key, arr in sorted(self.splits[split].arrays().items()):
                    hash_array(h, f"{split}/{key}", arr)
            cached = h.hexdigest()
            object.__setattr__(self, "_fingerprint", cached)
        return cached


def hash_array(h, key: str, arr: np.ndarray) -> None:
    """Feed one named array into hash `h` in a layout-independent way."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "OUS":
        payload = "\x1f".join(str(x) for x in arr.ravel()).encode("utf-8")
        h.update(f"{key}|str|{arr.shape}|".encode())
        h.update(payload)
    else:
        arr = np.ascontiguousarray(arr)
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.view(np.uint8).reshape(-1))


def check_dataset(ds: Dataset) -> None:
    """Shape and consistency checks; one line naming dataset, split and key on failure."""
    where = f"dataset {ds.name} ({ds.source})"
    if ds.kind not in ("mosi", "sims"):
        raise MsabenchError(f"{where}: kind must be 'mosi' or 'sims', got {ds.kind!r}")
    if not ds.splits:
        raise MsabenchError(f"{where}: no splits")
    ref = None
    for name, s in ds.splits.items():
        n = len(s.labels)
        at = f"{where}, split {name}"
        if s.labels.ndim != 1:
            raise MsabenchError(f"{at}: labels must be 1-d, got shape {s.labels.shape}")
        fields = {
            "ids": (s.ids, 1),
            "text_mask": (s.text_mask, 2),
            "audio": (s.audio, 3),
            "audio_lengths": (s.audio_lengths, 1),
            "vision": (s.vision, 3),
            "vision_lengths": (s.vision_lengths, 1),
            "text_ids": (s.text_ids, 2),
            "text_features": (s.text_features, 3),
            "raw_text": (s.raw_text, 1),
        }
        fields.update({f"labels_{k}": (v, 1) for k, v in s.extra_labels.items()})
        for key, (arr, ndim) in fields.items():
            if arr is None:
                continue
            if arr.ndim != ndim:
                raise MsabenchError(f"{at}, key {key}: expected {ndim} dimensions, got shape {arr.shape}")
            if arr.shape[0] != n:
                raise MsabenchError(f"{at}, key {key}: {arr.shape[0]} rows but {n} labels")
        if s.text_ids is None and s.text_features is None:
            raise MsabenchError(f"{at}: no text (neither token ids nor features)")
        L = s.text_mask.shape[1]
        for key, arr in (("text_ids", s.text_ids), ("text_features", s.text_features)):
            if arr is not None and arr.shape[1] != L:
                raise MsabenchError(f"{at}, key {key}: length {arr.shape[1]} differs from the attention mask's {L}")
        for key, arr, lens in (("audio", s.audio, s.audio_lengths), ("vision", s.vision, s.vision_lengths)):
            if n and (lens.min() < 0 or lens.max() > arr.shape[1]):
                bad = int(np.flatnonzero((lens < 0) | (lens > arr.shape[1]))[0])
                raise MsabenchError(
                    f"{at}, key {key}_lengths: sample {s.ids[bad]} has length {int(lens[bad])} outside [0, {arr.shape[1]}]"
                )
        if not s.labelled:
            pass
        elif n and not np.all(np.isfinite(s.labels)):
            bad = int(np.flatnonzero(~np.isfinite(s.labels))[0])
            raise MsabenchError(f"{at}, key labels: sample {s.ids[bad]} has a non-finite label")
        lo, hi = ds.label_range
        if s.labelled and n and (s.labels.min() < lo - 1e-6 or s.labels.max() > hi + 1e-6):
            bad = int(np.flatnonzero((s.labels < lo - 1e-6) | (s.labels > hi + 1e-6))[0])
            raise MsabenchError(
                f"{at}, key labels: sample {s.ids[bad]} has label {float(s.labels[bad])} outside [{lo}, {hi}]"
            )
        if len(set(s.ids.tolist())) != n:
            raise MsabenchError(f"{at}, key ids: sample ids are not unique")
        dims = (s.text_mask.shape[1], s.audio.shape[1:], s.vision.shape[1:],
                None if s.text_features is None else s.text_features.shape[2], s.text_ids is None)
        if ref is None:
            ref = (name, dims)
        elif dims != ref[1]:
            raise MsabenchError(f"{at}: shapes {dims} differ from split {ref[0]}'s {ref[1]}")
