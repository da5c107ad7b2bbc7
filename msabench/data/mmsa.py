"""Loader for the community's MMSA processed pickles (MOSI/MOSEI/SIMS `*.pkl`).

A pickle can run arbitrary code when loaded, and these files are downloaded from
third-party links, so they are read with an unpickler that admits only numpy arrays,
dtypes and builtin containers and refuses every other global by name.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from msabench.data import registry
from msabench.data.core import SPLITS, Dataset, Split, kind_of
from msabench.errors import MsabenchError

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes
    ("collections", "OrderedDict"),
    *(("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                                 "int", "float", "complex", "bool", "slice")),
}
OBTAIN = ("the processed MOSI/MOSEI/SIMS pickles are distributed by the MMSA project (thuiar/MMSA README, "
          "'Datasets' links); msabench cannot download them")
TEXT_CHOICES = ("ids", "features", "both")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f, path):
        super().__init__(f, encoding="latin1")
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise MsabenchError(
            f"{self.path}: refusing to load: the pickle asks for '{module}.{name}', which could run code; "
            "only numpy arrays and builtin containers are allowed in an MMSA data file"
        )


def read_pickle(path: str | Path):
    """Unpickle `path` with the restricted unpickler; one-line errors for every failure."""
    path = Path(path)
    if not path.is_file():
        raise MsabenchError(f"data file {path} does not exist; {OBTAIN}")
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, path).load()
    except MsabenchError:
        raise
    except Exception as e:  # corrupt bytes raise almost anything: UnpicklingError, OverflowError, MemoryError...
        raise MsabenchError(f"{path}: not a readable MMSA pickle (truncated or corrupt): {type(e).__name__}: {e}") from None


def _array(part: dict, key: str, where: str, dtype=None, required=True):
    if key not in part:
        if required:
            raise MsabenchError(f"{where}: key '{key}' is missing (keys present: {', '.join(sorted(map(str, part)))})")
        return None
    try:
        arr = np.asarray(part[key]) if dtype is None else np.asarray(part[key], dtype=dtype)
    except (ValueError, TypeError) as e:
        raise MsabenchError(f"{where}: key '{key}' is not a rectangular array: {e}") from None
    return arr


def _clean(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """float32 copy with NaN/inf set to 0 (MMSA audio has -inf), and how many were set."""
    arr = np.asarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    n = int(bad.sum())
    if n:
        arr = np.where(bad, np.float32(0.0), arr)
    return arr, n


def split_from_dict(part: dict, name: str, where: str, text: str = "both") -> tuple[Split, int]:
    """One MMSA split dict -> Split, plus the number of non-finite values replaced."""
    if not isinstance(part, dict):
        raise MsabenchError(f"{where}: expected a dict of arrays, got {type(part).__name__}")
    if text not in TEXT_CHOICES:
        raise MsabenchError(f"text must be one of {', '.join(TEXT_CHOICES)}, got {text!r}")
    bert = _array(part, "text_bert", where, np.float64, required=text == "ids")
    feats = _array(part, "text", where, None, required=text == "features" or bert is None)
    replaced = 0
    text_ids = text_mask = text_features = None
    if bert is not None:
        if bert.ndim != 3 or bert.shape[1] != 3:
            raise MsabenchError(f"{where}: key 'text_bert' must have shape [N, 3, L], got {bert.shape}")
        if not np.all(np.isfinite(bert)) or np.any(bert != np.round(bert)):
            raise MsabenchError(f"{where}: key 'text_bert' holds non-integer token ids")
        text_mask = bert[:, 1, :].astype(np.int64)
        if text != "features":
            text_ids = bert[:, 0, :].astype(np.int64)
    if feats is not None and (text != "ids" or bert is None):
        if feats.ndim != 3:
            raise MsabenchError(f"{where}: key 'text' must have shape [N, L, D], got {feats.shape}")
        text_features, n = _clean(feats)
        replaced += n
        if text_mask is None:  # features only: a token is real where its vector is not all zero
            text_mask = np.any(text_features != 0, axis=2).astype(np.int64)
    audio, n = _clean(_array(part, "audio", where))
    replaced += n
    vision, n = _clean(_array(part, "vision", where))
    replaced += n
    for key, arr in (("audio", audio), ("vision", vision)):
        if arr.ndim != 3:
            raise MsabenchError(f"{where}: key '{key}' must have shape [N, T, D], got {arr.shape}")
    text_len = text_mask.sum(axis=1).astype(np.int64)

    def lengths(key, arr):
        raw = _array(part, key, where, None, required=False)
        if raw is None:  # aligned files: frames follow the text tokens
            return np.minimum(text_len, arr.shape[1])
        if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.number) or np.any(raw != np.round(raw)):
            raise MsabenchError(f"{where}: key '{key}' must be a list of integer lengths")
        return raw.astype(np.int64)

    labels = _array(part, "regression_labels", where)
    if not np.issubdtype(labels.dtype, np.number):
        raise MsabenchError(f"{where}: key 'regression_labels' is not numeric")
    ids = _array(part, "id", where)
    raw_text = _array(part, "raw_text", where, required=False)
    extra = {}
    for m in ("T", "A", "V"):
        arr = _array(part, f"regression_labels_{m}", where, required=False)
        if arr is not None:
            extra[m] = arr.astype(np.float32).reshape(-1)
    split = Split(
        name=name,
        ids=ids.astype(str).reshape(-1),
        labels=labels.astype(np.float32).reshape(-1),
        text_mask=text_mask,
        audio=audio,
        audio_lengths=lengths("audio_lengths", audio),
        vision=vision,
        vision_lengths=lengths("vision_lengths", vision),
        text_ids=text_ids,
        text_features=text_features,
        raw_text=None if raw_text is None else raw_text.astype(str).reshape(-1),
        extra_labels=extra,
    )
    return split, replaced


def from_dict(raw, name: str, variant: str, source: str, text: str = "both") -> Dataset:
    """An MMSA-format dict ({'train': {...}, 'valid': ..., 'test': ...}) -> Dataset."""
    if not isinstance(raw, dict):
        raise MsabenchError(f"{source}: expected a dict with splits {', '.join(SPLITS)}, got {type(raw).__name__}")
    splits, replaced = {}, 0
    for s in SPLITS:
        if s not in raw:
            raise MsabenchError(f"{source}: split '{s}' is missing (keys present: {', '.join(sorted(map(str, raw)))})")
        splits[s], n = split_from_dict(raw[s], s, f"{source}, split {s}", text=text)
        replaced += n
    train = splits["train"]
    registry.check_shapes(name, variant, (train.text_mask.shape[1], train.audio.shape[1], train.vision.shape[1]),
                          train.text_features is not None, source)
    return Dataset(name=name, variant=variant, kind=kind_of(name), splits=splits,
                   source=source, nonfinite_replaced=replaced)


def load(path: str | Path, name: str, variant: str, text: str = "both") -> Dataset:
    """Read an MMSA processed pickle safely and convert it."""
    return from_dict(read_pickle(path), name, variant, str(path), text=text)
