"""Feature tables: msabench's format for utterance-level feature sets (one vector per utterance).

Many MSA feature sets have no time axis: one vector per utterance and modality (e.g. the
bc-LSTM CMU-MOSI features). msabench reads them from a *feature table*, a `.npz` file
(numpy, no pickles: object arrays are refused) or a Parquet file, with one row per
utterance and these keys / columns:

- `ids` [N] str: unique sample ids, "videoid_clip" (the video id is everything before the
  last underscore; MMSA's "videoid$_$clip" is understood too);
- `label` [N] float: the sentiment score, in [-3, 3] for kind "mosi" ([-1, 1] for "sims");
- `text`, `audio`, `vision` [N, D] float: one feature vector per utterance and modality
  (`video` is accepted as an alias of `vision`). In Parquet, fixed-size-list (or equal-length
  list) columns of floats;
- one or more split columns [N] str with the values `train` / `valid` / `test`; the
  dataset spec (`TableSpec.split_column`) names the one to use;
- optional `text_raw` [N] str: the transcript (needed for `text="tokens"` and `"words"`).
Any other key is ignored (e.g. `label_bin`, a second split column).

How a table becomes a `Dataset` (the choice msabench makes for utterance-level data):
- every utterance-level vector is a sequence of length ONE: audio and vision are
  [N, 1, D] with lengths 1, so models, masks and fills need nothing special. A missing
  modality (or a dropped "frame" under an intra-modality rate r) is the whole utterance
  vector set to zero: on this data intra-modality missing is a per-sample feature drop;
- text, by the spec's `text`:
  * `features`: text_features [N, 1, Dt], text_mask [N, 1] all ones, no token ids;
  * `tokens`: BERT WordPiece ids of `text_raw` (below), text_mask marking the real tokens, no
    text features. Audio and vision stay length-1 vectors;
  * `words`: ids from a word vocabulary of the training transcripts (see `Vocabulary`), for
    models that learn their embeddings and for contrast with `tokens`;
  * `states`: the token level `msabench data embed` adds to a table: text_ids and text_mask
    from `text_ids` / `text_attention`, text_features [N, L, H] from `text_states` (a frozen
    encoder's states, not standardised, as MMSA's `text`). The width must be the one the
    `text_encoder` record names.
- standardisation (`standardize`, on by default): every feature dimension of text, audio
  and vision is centred and scaled by the mean and standard deviation of the TRAINING
  part (after validation is carved out; a constant dimension is only centred). Feature
  sets come in arbitrary scales (the bc-LSTM audio reaches 376), and the zero vector that
  stands for a missing modality is then the training mean (mean imputation) rather than
  an out-of-distribution point. No statistic ever comes from valid or test rows;
- validation: when the split column has no `valid` rows, `valid_fraction` of the train
  rows is carved out by WHOLE VIDEOS (speaker-independent: no video on both sides). Videos
  are ordered by sha256("{valid_seed}:{video id}") and taken in that order until at least
  `valid_fraction` of the train utterances are in validation. Deterministic, independent of
  row order.

Tokenisation for `text="tokens"`: the transcript goes through a BERT tokenizer (the spec's
`tokenizer`: "minilm", the packaged all-MiniLM-L6-v2 one, i.e. bert-base-uncased's WordPiece
vocabulary, or a local tokenizer folder; see msabench.data.pretrained), at most `max_tokens` ids
with [CLS] first and [SEP] last, then [PAD]=0. Intra-modality masking then acts on real BERT
tokens, as LNLN's does on MMSA's `text_bert`, and a pretrained encoder reads them as it was
trained to. The loaded `Dataset` names the tokenizer in `dataset.tokenizer`.

Tokenisation for `text="words"`: the transcript is lower-cased and split into words with
the regular expression `[a-z0-9]+(?:'[a-z0-9]+)*` (letters/digits, inner apostrophes kept:
"it's" is one word; all other characters separate words). The vocabulary is built from the
TRAINING part only (after validation is carved out): [PAD]=0, [UNK]=100, [CLS]=101,
[SEP]=102 (BERT's ids), words numbered from 103 upward by frequency (descending), ties
alphabetical. A sample is [CLS] w1 ... wk [SEP]; when that is longer than `max_tokens`
the words are cut so that [SEP] stays last; then padded with 0. Words not in the
vocabulary (only in valid/test) become [UNK]. Ids must stay below 30522 (the bundled
models' embedding size): a larger vocabulary is refused with a clear error. The ids are a
dataset-specific word vocabulary that shares only BERT's four special ids, not BERT
word pieces: models learn their embeddings (the bundled models' default
`text_encoder=scratch`); `text_encoder=bert` would read them as unrelated word pieces.
The loaded `Dataset` carries the vocabulary as `dataset.vocabulary`.

Bad input is refused with one `MsabenchError` line naming the file, the key and, where it
applies, the sample id: missing keys, wrong dimensions, mismatched row counts, unknown or
missing splits, labels out of range, non-finite features (refused, not silently zeroed),
duplicate ids. Nothing is ever written.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from msabench.data import pretrained, registry
from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, SPLITS, UNK_ID, Dataset, Split
from msabench.errors import MsabenchError

SUFFIXES = (".npz", ".parquet")
TEXT_CHOICES = registry.DATASETS["mosi-utt"].variant_names  # features, tokens, words, states
FIRST_WORD_ID = 103
VOCAB_LIMIT = 30522  # the bundled models' embedding size (bert-base-uncased)
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
MODALITY_KEYS = {"text": ("text",), "audio": ("audio",), "vision": ("vision", "video")}


@dataclass(frozen=True)
class TableSpec:
    """How one named utterance-level dataset is read from a feature table."""

    name: str
    kind: str = "mosi"  # metric family and label range: "mosi" [-3, 3] or "sims" [-1, 1]
    split_column: str = "split"
    valid_fraction: float = 0.15  # share of train utterances carved out (by whole videos) when there is no valid split
    valid_seed: int = 0
    text: str = "features"  # "features", "tokens" (WordPiece) or "words" (word vocabulary)
    max_tokens: int = 50  # text="tokens"/"words": sequence length including [CLS] and [SEP]
    tokenizer: str = "minilm"  # text="tokens": "minilm" (packaged) or a local tokenizer folder
    standardize: bool = True  # z-score every feature dimension with training-part statistics
    filename: str = ""  # the file looked for in data_dir / $MSABENCH_DATA

    @property
    def label_range(self) -> tuple[float, float]:
        return (-1.0, 1.0) if self.kind == "sims" else (-3.0, 3.0)


# mosi-utt: the bc-LSTM utterance-level CMU-MOSI features. Its text and visual features were
# learned with labels on the bc-LSTM train split, so the train part (and validation carved from it)
# is far easier than the test part (valid Acc-2 ~0.98 vs test ~0.78): validation scores on this set
# say little about test scores. Evaluate on split_bclstm only (split_std leaks test utterances).
# utt: any user's table in this format with a `split` column and labels in [-3, 3]; write a protocol
# with dataset = "utt" and pass the table with --data.
REGISTRY = {
    "mosi-utt": TableSpec(name="mosi-utt", kind=registry.kind("mosi-utt"), split_column="split_bclstm", valid_fraction=0.15,
                          valid_seed=0, filename="mosi-utterance.npz"),
    "utt": TableSpec(name="utt", kind=registry.kind("utt"), split_column="split", valid_fraction=0.15, valid_seed=0),
}
VARIANTS = {name: TEXT_CHOICES for name in REGISTRY}
OBTAIN = {"mosi-utt": "mosi-utterance.npz holds the bc-LSTM utterance-level CMU-MOSI features (Poria et al., "
                      "ACL 2017) with the official labels; msabench cannot download it",
          "utt": "pass your feature table with --data TABLE.npz|.parquet"}


def spec(name: str, variant: str) -> TableSpec:
    """The registered spec of `name` with text mode `variant`."""
    if name not in REGISTRY:
        raise MsabenchError(f"unknown feature-table dataset {name!r}; known: {', '.join(REGISTRY)}")
    if variant not in TEXT_CHOICES:
        raise MsabenchError(f"{variant!r} is not a variant of {name}; allowed: {', '.join(TEXT_CHOICES)}")
    return replace(REGISTRY[name], text=variant)


# ---------------------------------------------------------------------------- reading


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {}
            for key in z.files:
                try:
                    out[key] = z[key]
                except ValueError:
                    raise MsabenchError(f"{path}: key '{key}' is an object array (a pickle); a feature table "
                                        "holds only numeric and string arrays") from None
            return out
    except MsabenchError:
        raise
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
        raise MsabenchError(f"{path}: not a readable .npz file: {type(e).__name__}: {e}") from None


def _column(col, key: str, path: Path) -> np.ndarray:
    import pyarrow as pa

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        raise MsabenchError(f"{path}: column '{key}' has {col.null_count} missing (null) value(s)")
    if pa.types.is_dictionary(col.type):  # e.g. a pandas categorical split column
        col = col.dictionary_decode()
    t = col.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = col.flatten()
        if inner.null_count:
            raise MsabenchError(f"{path}: column '{key}' has missing (null) values inside its lists")
        if pa.types.is_list(inner.type) or pa.types.is_fixed_size_list(inner.type) or pa.types.is_large_list(inner.type):
            raise MsabenchError(f"{path}: column '{key}' is a list of lists; a feature column holds one vector per row")
        n = len(col)
        if pa.types.is_fixed_size_list(t):
            width = t.list_size
        else:
            sizes = np.diff(np.asarray(col.offsets)) if n else np.zeros(0, dtype=np.int64)
            if n and np.any(sizes != sizes[0]):
                bad = int(np.flatnonzero(sizes != sizes[0])[0])
                raise MsabenchError(f"{path}: column '{key}': row {bad} has {int(sizes[bad])} values but row 0 has "
                                    f"{int(sizes[0])}; a feature column needs one length")
            width = int(sizes[0]) if n else 0
        values = inner.to_numpy(zero_copy_only=False)
        return values.reshape(n, width)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.asarray(col.to_pylist(), dtype=str)
    return col.to_numpy(zero_copy_only=False)


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MsabenchError(f"{path}: reading Parquet needs the pyarrow package ({e}); pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise MsabenchError(f"{path}: not a readable Parquet file: {type(e).__name__}: {e}") from None
    return {name: _column(table.column(name), name, path) for name in table.column_names}


def read_raw(path: str | Path) -> dict[str, np.ndarray]:
    """Every key of a feature table as a numpy array (no checks beyond readability)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise MsabenchError(f"{path}: a feature table is a .npz or .parquet file, got suffix {path.suffix!r}")
    if not path.is_file():
        raise MsabenchError(f"feature table {path} does not exist")
    return _read_npz(path) if path.suffix == ".npz" else _read_parquet(path)


# ---------------------------------------------------------------------------- checks


def video_of(sample_id: str) -> str:
    """"abc_12" -> "abc"; MMSA's "abc$_$12" -> "abc"; an id without a clip part is its own video."""
    if "$_$" in sample_id:
        return sample_id.rsplit("$_$", 1)[0]
    return sample_id.rsplit("_", 1)[0] if "_" in sample_id else sample_id


def _get(raw: dict, keys: tuple[str, ...], path: Path, what: str) -> tuple[str, np.ndarray]:
    present = [k for k in keys if k in raw]
    if not present:
        alias = f" (or '{keys[1]}')" if len(keys) > 1 else ""
        raise MsabenchError(f"{path}: key '{keys[0]}'{alias} is missing: {what} (keys present: "
                            f"{', '.join(sorted(raw))})")
    if len(present) > 1:
        raise MsabenchError(f"{path}: keys {' and '.join(repr(k) for k in present)} are both present; "
                            f"they are aliases, keep one")
    return present[0], np.asarray(raw[present[0]])


def _check_table(raw: dict, spec: TableSpec, path: Path) -> dict[str, np.ndarray]:
    """Validated arrays: ids, label, split, text, audio, vision, and text_raw if present."""
    _, ids = _get(raw, ("ids",), path, "one id per sample")
    if ids.ndim != 1:
        raise MsabenchError(f"{path}: key 'ids' must be 1-d [N], got shape {ids.shape}")
    if ids.dtype.kind not in "US":
        raise MsabenchError(f"{path}: key 'ids' must hold strings, got dtype {ids.dtype}")
    ids = ids.astype(str)
    n = len(ids)
    if n == 0:
        raise MsabenchError(f"{path}: key 'ids' is empty: the table has no samples")
    seen: dict[str, int] = {}
    for i, s in enumerate(ids.tolist()):
        if s in seen:
            raise MsabenchError(f"{path}: key 'ids': sample id {s} appears twice (rows {seen[s]} and {i})")
        seen[s] = i

    def rows(key, arr):
        if arr.shape[0] != n:
            raise MsabenchError(f"{path}: key '{key}' has {arr.shape[0]} rows but 'ids' has {n}")

    out = {"ids": ids}
    _, label = _get(raw, ("label",), path, "the sentiment score of each sample")
    if label.ndim != 1:
        raise MsabenchError(f"{path}: key 'label' must be 1-d [N], got shape {label.shape}")
    rows("label", label)
    if label.dtype.kind not in "iuf":
        raise MsabenchError(f"{path}: key 'label' must be numeric, got dtype {label.dtype}")
    label = label.astype(np.float64)
    lo, hi = spec.label_range
    bad = ~np.isfinite(label) | (label < lo - 1e-6) | (label > hi + 1e-6)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "a non-finite label" if not np.isfinite(label[i]) else f"label {label[i]:g} outside [{lo:g}, {hi:g}]"
        raise MsabenchError(f"{path}: key 'label': sample {ids[i]} has {what} ({int(bad.sum())} bad label(s) in all)")
    out["label"] = label.astype(np.float32)

    if spec.split_column not in raw:
        raise MsabenchError(f"{path}: key '{spec.split_column}' (the split column of {spec.name}) is missing "
                            f"(keys present: {', '.join(sorted(raw))})")
    split = np.asarray(raw[spec.split_column])
    if split.ndim != 1:
        raise MsabenchError(f"{path}: key '{spec.split_column}' must be 1-d [N], got shape {split.shape}")
    rows(spec.split_column, split)
    if split.dtype.kind not in "US":
        raise MsabenchError(f"{path}: key '{spec.split_column}' must hold the strings train/valid/test, "
                            f"got dtype {split.dtype}")
    split = split.astype(str)
    unknown = ~np.isin(split, SPLITS)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise MsabenchError(f"{path}: key '{spec.split_column}': sample {ids[i]} has split {str(split[i])!r}; "
                            f"allowed: {', '.join(SPLITS)}")
    for need in ("train", "test"):
        if not np.any(split == need):
            raise MsabenchError(f"{path}: key '{spec.split_column}' has no '{need}' rows")
    out["split"] = split

    for mod, keys in MODALITY_KEYS.items():
        key, arr = _get(raw, keys, path, f"the {mod} feature vector of each sample")
        if arr.ndim != 2:
            raise MsabenchError(f"{path}: key '{key}' must be 2-d [N, D] (one vector per utterance), "
                                f"got shape {arr.shape}")
        rows(key, arr)
        if arr.dtype.kind not in "iuf":
            raise MsabenchError(f"{path}: key '{key}' must be numeric, got dtype {arr.dtype}")
        if arr.shape[1] == 0:
            raise MsabenchError(f"{path}: key '{key}' has feature dimension 0")
        finite = np.isfinite(arr)
        if not finite.all():
            bad_rows = ~finite.all(axis=1)
            i = int(np.flatnonzero(bad_rows)[0])
            j = int(np.flatnonzero(~finite[i])[0])
            raise MsabenchError(f"{path}: key '{key}': sample {ids[i]} has a non-finite value ({arr[i, j]}) at "
                                f"dimension {j} ({int(bad_rows.sum())} sample(s) affected); feature tables must "
                                "be finite: fix or impute them before loading")
        out[mod] = arr.astype(np.float32)

    if "text_raw" in raw:
        text_raw = np.asarray(raw["text_raw"])
        if text_raw.ndim != 1:
            raise MsabenchError(f"{path}: key 'text_raw' must be 1-d [N], got shape {text_raw.shape}")
        rows("text_raw", text_raw)
        if text_raw.dtype.kind not in "US":
            raise MsabenchError(f"{path}: key 'text_raw' must hold strings, got dtype {text_raw.dtype}")
        out["text_raw"] = text_raw.astype(str)
    elif spec.text in ("tokens", "words"):
        raise MsabenchError(f"{path}: key 'text_raw' is missing: {spec.name} variant '{spec.text}' builds token "
                            "ids from the transcripts")
    if spec.text == "states":
        out.update(_check_states(raw, n, ids, path))
    return out


ENCODER_KEY = "text_encoder"  # feature tables: "spec|sha256|hidden" of the encoder that made text_states


def parse_record(record: str) -> tuple[str, str, int | None]:
    """-> (spec, weights sha256, width) of an ENCODER_KEY record; width None when not recorded."""
    parts = record.rsplit("|", 2)
    if len(parts) != 3:
        raise ValueError(record)
    return parts[0], parts[1], int(parts[2]) if parts[2] else None


def _check_states(raw: dict, n: int, ids: np.ndarray, path: Path) -> dict:
    """The token level of variant `states`: ids, attention and states agree, the width is the encoder's."""
    missing = [k for k in ("text_ids", "text_attention", "text_states", ENCODER_KEY) if k not in raw]
    if missing:
        raise MsabenchError(f"{path}: key '{missing[0]}' is missing: variant 'states' reads the token states "
                            f"`msabench data embed {path.name} --out NEW.npz` adds")
    tok, att, states = (np.asarray(raw[k]) for k in ("text_ids", "text_attention", "text_states"))
    if tok.ndim != 2 or tok.shape[0] != n or tok.dtype.kind not in "iu":
        raise MsabenchError(f"{path}: key 'text_ids' must be integer [N={n}, L], got {tok.dtype} {tok.shape}")
    if att.shape != tok.shape:
        raise MsabenchError(f"{path}: key 'text_attention' has shape {att.shape}, 'text_ids' {tok.shape}")
    if states.ndim != 3 or states.shape[:2] != tok.shape or states.dtype.kind != "f":
        raise MsabenchError(f"{path}: key 'text_states' must be float [N, L, H] with [N, L] = {list(tok.shape)}, "
                            f"got {states.dtype} {states.shape}")
    try:
        name, sha, width = parse_record(str(np.asarray(raw[ENCODER_KEY])))
    except ValueError:
        raise MsabenchError(f"{path}: key '{ENCODER_KEY}' is not a record of `msabench data embed` "
                            "(name|sha256|width)") from None
    if width is not None and states.shape[2] != width:
        raise MsabenchError(f"{path}: key 'text_states' has width {states.shape[2]} but its encoder {name} "
                            f"(key '{ENCODER_KEY}') has width {width}; embed the table again")
    finite = np.isfinite(states).all(axis=(1, 2))
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise MsabenchError(f"{path}: key 'text_states': sample {ids[i]} has non-finite values")
    return {"text_ids": tok.astype(np.int64), "text_attention": att.astype(np.int64),
            "text_states": states.astype(np.float32), "text_encoder": f"{name} (weights sha256 {sha[:12]})"}


# ---------------------------------------------------------------------------- validation carving


def carve_valid(ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Bool [N]: train rows moved to validation, whole videos at a time (see the module docstring)."""
    videos = np.array([video_of(s) for s in ids.tolist()])
    names, counts = np.unique(videos, return_counts=True)
    if len(names) < 2:
        raise MsabenchError(f"cannot carve a validation part by videos: the train part has {len(names)} video(s)")
    order = sorted(range(len(names)), key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).hexdigest())
    target = fraction * len(ids)
    chosen, total = [], 0
    for i in order[:-1]:  # at least one video stays in train
        if total >= target:
            break
        chosen.append(names[i])
        total += int(counts[i])
    return np.isin(videos, chosen)


def standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """float32 (x - mean) / std per dimension, statistics over the rows where `train` is True."""
    ref = x[train].astype(np.float64)
    mean, std = ref.mean(0), ref.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    return ((x - mean) / std).astype(np.float32)


# ---------------------------------------------------------------------------- tokens


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Word -> BERT-style id, built from training transcripts only."""

    index: dict  # word -> id (>= 103)

    @classmethod
    def build(cls, texts, source: str = "") -> "Vocabulary":
        counts = Counter(w for t in texts for w in words(t))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        if FIRST_WORD_ID + len(ranked) > VOCAB_LIMIT:
            raise MsabenchError(f"{source}: the training transcripts have {len(ranked)} distinct words; with ids "
                                f"from {FIRST_WORD_ID} they would pass {VOCAB_LIMIT - 1}, the largest id the bundled "
                                "models embed")
        return cls({w: FIRST_WORD_ID + i for i, w in enumerate(ranked)})

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, texts, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """-> ids [N, max_tokens] int64 and the attention mask [N, max_tokens] int64."""
        n = len(texts)
        ids = np.full((n, max_tokens), PAD_ID, dtype=np.int64)
        for i, t in enumerate(texts):
            seq = [CLS_ID] + [self.index.get(w, UNK_ID) for w in words(t)][:max_tokens - 2] + [SEP_ID]
            ids[i, :len(seq)] = seq
        return ids, (ids != PAD_ID).astype(np.int64)


# ---------------------------------------------------------------------------- Dataset


def from_arrays(raw: dict, spec: TableSpec, source: str) -> Dataset:
    """A feature table already read into arrays -> Dataset (all checks applied)."""
    path = Path(source)
    if spec.text not in TEXT_CHOICES:
        raise MsabenchError(f"{spec.name}: text must be one of {', '.join(TEXT_CHOICES)}, got {spec.text!r}")
    if spec.text in ("tokens", "words") and spec.max_tokens < 3:
        raise MsabenchError(f"{spec.name}: max_tokens must be >= 3 ([CLS], a word, [SEP]), got {spec.max_tokens}")
    t = _check_table(raw, spec, path)
    part = t["split"].copy()
    if not np.any(part == "valid"):
        if not 0.0 < spec.valid_fraction < 1.0:
            raise MsabenchError(f"{path}: key '{spec.split_column}' has no 'valid' rows and {spec.name} carves "
                                f"none (valid_fraction {spec.valid_fraction})")
        train_rows = np.flatnonzero(part == "train")
        moved = carve_valid(t["ids"][train_rows], spec.valid_fraction, spec.valid_seed)
        part[train_rows[moved]] = "valid"
    if spec.standardize:
        train = part == "train"
        for mod in MODALITY_KEYS:
            t[mod] = standardise(t[mod], train)
    vocab = None
    if spec.text == "words":
        vocab = Vocabulary.build(t["text_raw"][part == "train"], str(path))
    elif spec.text == "tokens":
        pretrained.tokenizer(spec.tokenizer)  # a missing package or folder: one line before the work
    splits = {}
    for name in SPLITS:
        rows = np.flatnonzero(part == name)
        m = len(rows)
        ones = np.ones(m, dtype=np.int64)
        text_ids = text_features = None
        if spec.text == "states":
            text_ids, text_mask, text_features = t["text_ids"][rows], t["text_attention"][rows], t["text_states"][rows]
        elif vocab is not None:
            text_ids, text_mask = vocab.encode(t["text_raw"][rows].tolist(), spec.max_tokens)
        elif spec.text == "tokens":
            text_ids, text_mask = pretrained.encode(t["text_raw"][rows].tolist(), spec.tokenizer, spec.max_tokens)
        else:
            text_features = t["text"][rows][:, None, :]
            text_mask = np.ones((m, 1), dtype=np.int64)
        splits[name] = Split(
            name=name,
            ids=t["ids"][rows],
            labels=t["label"][rows],
            text_mask=text_mask,
            audio=t["audio"][rows][:, None, :],
            audio_lengths=ones,
            vision=t["vision"][rows][:, None, :],
            vision_lengths=ones.copy(),
            text_ids=text_ids,
            text_features=text_features,
            raw_text=t["text_raw"][rows] if "text_raw" in t else None,
        )
    ds = Dataset(name=spec.name, variant=spec.text, kind=spec.kind, splits=splits, source=source)
    if vocab is not None:
        object.__setattr__(ds, "vocabulary", vocab)
    if spec.text == "tokens":
        object.__setattr__(ds, "tokenizer", spec.tokenizer)
    if spec.text == "states":
        object.__setattr__(ds, "text_encoder", t["text_encoder"])
    return ds


def load(path: str | Path, spec: TableSpec) -> Dataset:
    """Read and convert the feature table at `path` under `spec`."""
    return from_arrays(read_raw(path), spec, str(path))


def find(name: str, data_dir: str | Path | None) -> Path:
    """The table file of `name` in `data_dir` (or $MSABENCH_DATA); one clear line when absent."""
    s = REGISTRY[name]
    hint = f"pass --data FILE (.npz or .parquet feature table), or put {s.filename} in --data-dir DIR / $MSABENCH_DATA"
    if not s.filename:
        raise MsabenchError(f"no data for {name}: {OBTAIN.get(name, 'pass --data FILE')}")
    if not data_dir:
        raise MsabenchError(f"no data for {name}: {hint}; {OBTAIN.get(name, '')}")
    path = Path(data_dir) / s.filename
    if not path.is_file():
        raise MsabenchError(f"data file {path} does not exist (expected for {name}); {hint}; {OBTAIN.get(name, '')}")
    return path


__all__ = ["TableSpec", "REGISTRY", "VARIANTS", "Vocabulary", "spec", "load", "from_arrays", "read_raw",
           "carve_valid", "video_of", "words", "find"]
