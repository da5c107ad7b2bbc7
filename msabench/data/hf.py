"""Hugging Face `datasets` side of the data layer, in msabench's own column schema.

`save_to_disk` folders are the offline exchange format (arrow, memory-mapped, no
pickle) and the Hub is where shared copies live. Round trips are bit-exact, so
`Dataset.fingerprint` names the data whichever container it travelled in.
`datasets` is imported inside functions only: it takes seconds to import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from msabench.data import registry
from msabench.data.core import Dataset, Split
from msabench.errors import MsabenchError

SCHEMA = "msabench-1"
META_FILE = "msabench.json"
EXTRA_LABEL_KEYS = ("T", "A", "V")

# Split field -> (HF column, dimensions per row, numpy dtype, required)
COLUMNS = {
    "ids": ("id", 0, str, True),
    "labels": ("label", 0, np.float32, True),
    "text_mask": ("text_mask", 1, np.int64, True),
    "text_ids": ("text_ids", 1, np.int64, False),
    "text_features": ("text_features", 2, np.float32, False),
    "audio": ("audio", 2, np.float32, True),
    "audio_lengths": ("audio_length", 0, np.int64, True),
    "vision": ("vision", 2, np.float32, True),
    "vision_lengths": ("vision_length", 0, np.int64, True),
    "raw_text": ("raw_text", 0, str, False),
}
COLUMNS.update({f"labels_{k}": (f"label_{k}", 0, np.float32, False) for k in EXTRA_LABEL_KEYS})

_CHUNK_VALUES = 1 << 30  # arrow list offsets are int32: keep every chunk well below 2**31 values


def _hf():
    """The `datasets` module, or a one-line hint when it is missing."""
    try:
        import datasets
    except ImportError as e:
        raise MsabenchError(f"Hugging Face data needs the `datasets` package ({e}); pip install datasets") from None
    return datasets


# ---------------------------------------------------------------------------- export


def _split_fields(split: Split, where: str) -> dict[str, np.ndarray]:
    out = {k: v for k, v in split.arrays().items() if not k.startswith("labels_")}
    for key, value in split.extra_labels.items():
        if key not in EXTRA_LABEL_KEYS:
            raise MsabenchError(f"{where}, split {split.name}, key labels_{key}: the HF schema only has label_T/A/V")
        out[f"labels_{key}"] = value
    return out


def _feature(datasets, arr: np.ndarray, row_dims: int, dtype):
    if dtype is str:
        return datasets.Value("string")
    value = datasets.Value(np.dtype(dtype).name)
    if row_dims == 0:
        return value
    if row_dims == 1:
        return datasets.Sequence(value)
    return datasets.Array2D(shape=tuple(int(d) for d in arr.shape[1:]), dtype=np.dtype(dtype).name)


def _arrow(arr: np.ndarray, dtype):
    """Nested fixed-size lists built straight from the buffer, in offset-safe row chunks."""
    import pyarrow as pa

    if dtype is str:
        return pa.array(np.asarray(arr).astype(str), type=pa.string())
    arr = np.ascontiguousarray(arr, dtype=dtype)
    per_row = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)))
    step = max(1, _CHUNK_VALUES // per_row)
    chunks = []
    for start in range(0, max(len(arr), 1), step):
        part = pa.array(arr[start : start + step].reshape(-1))
        for width in reversed(arr.shape[1:]):
            part = pa.FixedSizeListArray.from_arrays(part, int(width))
        chunks.append(part)
    return pa.chunked_array(chunks)


def to_hf(dataset: Dataset):
    """A `datasets.DatasetDict`, one split per msabench split, one row per sample."""
    datasets = _hf()
    where = f"dataset {dataset.name} ({dataset.source})"
    out = {}
    for name, split in dataset.splits.items():
        columns, features = {}, {}
        for key, arr in _split_fields(split, where).items():
            col, row_dims, dtype, _ = COLUMNS[key]
            features[col] = _feature(datasets, arr, row_dims, dtype)
            columns[col] = _arrow(arr, dtype)
        out[name] = datasets.Dataset.from_dict(columns, features=datasets.Features(features), split=name)
    return datasets.DatasetDict(out)


def save(dataset: Dataset, out_dir: str | os.PathLike) -> Path:
    """Write a save_to_disk folder plus msabench.json; readers never see half a folder."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MsabenchError(f"{out}: already exists and is not an empty folder; refusing to overwrite it")
    hf = to_hf(dataset)
    meta = {
        "schema": SCHEMA,
        "name": dataset.name,
        "variant": dataset.variant,
        "kind": dataset.kind,
        "source": dataset.source,
        "nonfinite_replaced": int(dataset.nonfinite_replaced),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        # datasets writes zero shards for an empty split and then cannot load it back
        hf.save_to_disk(str(tmp), num_shards={k: 1 for k, v in hf.items() if v.num_rows == 0})
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, out)  # POSIX: atomic, and allowed onto an empty folder
        except OSError as e:
            raise MsabenchError(f"{out}: cannot move the finished folder into place ({e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------- import


@contextmanager
def _offline_mode(datasets, on: bool) -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode for the block (they read the flag when imported)."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _chunk_numpy(chunk, row_dims: int, first_row: int, at: str) -> np.ndarray:
    """One arrow chunk as an [n, ...] array, refusing ragged rows and nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(chunk, pa.ExtensionArray):  # datasets.Array2D: nested lists underneath
        chunk = chunk.storage
    shape = [len(chunk)]
    for depth in range(row_dims):
        t = chunk.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise MsabenchError(f"{at}: expected {row_dims}-d rows, found {depth}-d rows of {t}")
        if chunk.null_count:
            raise MsabenchError(f"{at}: has missing (null) entries")
        lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
        if len(lengths):
            bad = np.flatnonzero(lengths != lengths[0])
            if len(bad):
                per_row = int(np.prod(shape[1:], dtype=np.int64))
                row = first_row + int(bad[0]) // per_row
                raise MsabenchError(
                    f"{at}: rows of inconsistent shapes (row {row} has length {int(lengths[bad[0]])} "
                    f"at dimension {depth + 1} where row {first_row} has {int(lengths[0])})"
                )
        shape.append(int(lengths[0]) if len(lengths) else 0)
        chunk = chunk.flatten()
    t = chunk.type
    if pa.types.is_nested(t):
        raise MsabenchError(f"{at}: expected {row_dims}-d rows, found deeper nesting ({t})")
    if chunk.null_count:
        raise MsabenchError(f"{at}: has missing (null) entries")
    return chunk.to_numpy(zero_copy_only=False).reshape(shape)


def _column_numpy(column, row_dims: int, dtype, at: str) -> np.ndarray:
    """A whole column as one owned, writable array of msabench's dtype."""
    import pyarrow as pa

    leaf = column.type.storage_type if isinstance(column.type, pa.ExtensionType) else column.type
    while pa.types.is_nested(leaf) and hasattr(leaf, "value_type"):
        leaf = leaf.value_type
    numeric = pa.types.is_integer(leaf) or pa.types.is_floating(leaf) or pa.types.is_boolean(leaf)
    if dtype is not str and not numeric:
        raise MsabenchError(f"{at}: holds {leaf} values, expected {np.dtype(dtype).name}")
    parts, first = [], 0
    for chunk in column.chunks:
        parts.append(_chunk_numpy(chunk, row_dims, first, at))
        first += len(chunk)
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return np.zeros((0,) * (row_dims + 1), dtype=dtype)
    for p in parts[1:]:
        if p.shape[1:] != parts[0].shape[1:]:
            raise MsabenchError(f"{at}: rows of inconsistent shapes ({p.shape[1:]} vs {parts[0].shape[1:]})")
    arr = np.concatenate(parts)  # always a copy: never a read-only view into the memory map
    return arr.astype(str) if dtype is str else arr.astype(dtype, copy=False)


def _from_hf(dd, *, name: str, variant: str, kind: str, source: str, nonfinite_replaced: int, where: str) -> Dataset:
    per_split: dict[str, dict[str, np.ndarray]] = {}
    for split_name, hf_split in dd.items():
        table = hf_split.with_format("arrow")[:]  # honours any indices mapping, zero-copy otherwise
        fields = {}
        for key, (col, row_dims, dtype, required) in COLUMNS.items():
            at = f"{where}, split {split_name}, column {col}"
            if col not in table.column_names:
                if required:
                    raise MsabenchError(f"{at}: missing (the split has {sorted(table.column_names)})")
                continue
            fields[key] = _column_numpy(table.column(col), row_dims, dtype, at)
        per_split[split_name] = fields
    # An empty split cannot show its row shape; borrow it from a non-empty split.
    for fields in per_split.values():
        for key, arr in fields.items():
            if len(arr) == 0:
                ref = next((f[key] for f in per_split.values() if key in f and len(f[key])), None)
                if ref is not None:
                    fields[key] = arr.reshape((0,) + ref.shape[1:])
    splits = {}
    for split_name, fields in per_split.items():
        extra = {k: fields.pop(f"labels_{k}") for k in EXTRA_LABEL_KEYS if f"labels_{k}" in fields}
        splits[split_name] = Split(name=split_name, extra_labels=extra, **fields)
    if "train" in splits:  # aligned or not from the arrays, not from what the folder says it is
        t = splits["train"]
        registry.check_shapes(name, variant, (t.text_mask.shape[1], t.audio.shape[1], t.vision.shape[1]),
                              t.text_features is not None, source)
    return Dataset(name=name, variant=variant, kind=kind, splits=splits, source=source,
                   nonfinite_replaced=nonfinite_replaced)


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise MsabenchError(f"{path}: missing; msabench folders carry it next to dataset_dict.json (write them with msabench.data.hf.save)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MsabenchError(f"{path}: not readable JSON ({e})") from None
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if schema != SCHEMA:
        raise MsabenchError(f"{path}: unknown schema {schema!r}, expected {SCHEMA!r}")
    for key in ("name", "variant", "kind"):
        if not isinstance(meta.get(key), str):
            raise MsabenchError(f"{path}: key {key!r} missing or not a string")
    if not isinstance(meta.get("nonfinite_replaced", 0), int):
        raise MsabenchError(f"{path}: key 'nonfinite_replaced' must be an integer")
    return meta


def load_folder(path: str | os.PathLike) -> Dataset:
    """Read a `save` folder back; arrays (and so the fingerprint) match the original bit for bit."""
    folder = Path(path)
    if not folder.exists():
        raise MsabenchError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise MsabenchError(f"{folder}: is a file, not a Hugging Face save_to_disk folder")
    if not (folder / "dataset_dict.json").is_file():
        hint = "; it holds a single Dataset, save a DatasetDict with one split per partition" if (folder / "state.json").is_file() else ""
        raise MsabenchError(f"{folder}: not a Hugging Face save_to_disk folder of a DatasetDict (no dataset_dict.json){hint}")
    meta = _read_meta(folder / META_FILE)
    datasets = _hf()
    try:
        dd = datasets.load_from_disk(str(folder))
    except Exception as e:  # a damaged folder: missing split folders, truncated arrow files
        raise MsabenchError(f"{folder}: datasets.load_from_disk failed ({type(e).__name__}: {e})") from e
    return _from_hf(dd, name=meta["name"], variant=meta["variant"], kind=meta["kind"], source=str(folder),
                    nonfinite_replaced=int(meta.get("nonfinite_replaced", 0)), where=str(folder))


_REPO_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*")
_TRUE = {"1", "ON", "YES", "TRUE"}
HUB_TIMEOUT = 3.0  # seconds to wait for a TCP connection to the Hub before calling this machine offline


def _offline_flag() -> str | None:
    """The environment variable that puts Hugging Face in offline mode, if one does."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return var
    return None


def _hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether a TCP connection to the Hub (HF_ENDPOINT, default huggingface.co:443) opens within `timeout`
    seconds, name lookup included; without one, `datasets` would retry for half a minute."""
    import socket
    import threading
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        host, port = url.hostname, url.port or (80 if url.scheme == "http" else 443)
    except ValueError:  # a malformed port in HF_ENDPOINT
        return False
    if not host:
        return False
    ok = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(timeout)
    return bool(ok)


def _hub_cached(repo_id: str) -> Path | None:
    """Where the local Hugging Face cache holds `repo_id` (prepared arrow files or downloaded snapshots), if it does."""
    datasets = _hf()
    from datasets.naming import camelcase_to_snakecase

    *owner, name = repo_id.split("/")
    prepared = Path(datasets.config.HF_DATASETS_CACHE).expanduser() / "___".join([*owner, camelcase_to_snakecase(name)])
    if any(p.is_dir() for p in prepared.glob("*/*/*")):
        return prepared
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE).expanduser() / f"datasets--{repo_id.replace('/', '--')}" / "snapshots"
    if snapshots.is_dir() and any(snapshots.iterdir()):
        return snapshots.parent
    return None


def load_hub(repo_id: str, name: str | None = None, variant: str = "unaligned_50", kind: str = "mosi",
             revision: str | None = None) -> Dataset:
    """A Hub dataset in this schema (e.g. pushed with `to_hf(ds).push_to_hub(repo_id)`); needs network,
    or the dataset in the local Hugging Face cache. Offline without it: one line at once, no retries."""
    where = f"Hugging Face Hub dataset {repo_id}"
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise MsabenchError(f"hub:{repo_id}: not a Hub dataset id; write hub:OWNER/NAME")
    datasets = _hf()
    offline = _offline_flag()
    if offline is None and not _hub_reachable():
        offline = f"no connection to {os.environ.get('HF_ENDPOINT') or 'huggingface.co'} opened in {HUB_TIMEOUT:g} s"
    elif offline is not None:
        offline = f"{offline} is set"
    if offline is not None and _hub_cached(repo_id) is None:
        raise MsabenchError(f"{where}: this machine cannot reach the Hub ({offline}) and the local Hugging Face cache "
                            f"({datasets.config.HF_DATASETS_CACHE}) does not hold it; copy the data over as a "
                            "save_to_disk folder (msabench.data.hf.save) and pass --data FOLDER")
    try:
        with _offline_mode(datasets, offline is not None):  # read from the cache, no half-minute of retries
            dd = datasets.load_dataset(repo_id, revision=revision)
    except ConnectionError as e:
        raise MsabenchError(f"{where}: this machine cannot reach the Hub ({e}); copy the data over as a "
                            f"save_to_disk folder (msabench.data.hf.save) and use load_folder") from None
    except datasets.exceptions.DatasetNotFoundError as e:
        raise MsabenchError(f"{where}: not found on the Hub, or private/gated without a login ({e})") from None
    if not isinstance(dd, datasets.DatasetDict):
        raise MsabenchError(f"{where}: expected splits (a DatasetDict), got {type(dd).__name__}")
    return _from_hf(dd, name=name or repo_id.rsplit("/", 1)[-1].lower(), variant=variant, kind=kind,
                    source=f"hf://{repo_id}", nonfinite_replaced=0, where=where)
