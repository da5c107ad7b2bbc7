"""Adding pretrained token features to a data file: `msabench data embed`.

MMSA's processed files carry, next to the BERT token ids (`text_bert`, [N, 3, L]: ids,
attention mask, segment ids), the states of a BERT encoder for those tokens (`text`,
[N, L, 768]). A user's own data often has only ids or transcripts; this computes the
`text` field with a local BERT-family encoder (the packaged MiniLM by default), so bundled
models can read fixed token features (`text_input=features`), as they do on MMSA's files.

The states are the encoder's last hidden layer for the clean ids, in float32, computed
without gradients in eval mode, in batches (padding positions are kept as the encoder
gives them; the attention mask marks them). A split without `text_bert` but with
`raw_text` is tokenized first (at most `max_tokens` WordPiece ids), and gets `text_bert`
too. The output is a new file, written atomically; existing `text` features are replaced
only when asked.

A feature table (.npz or .parquet, one vector per utterance) gets the token level it lacks:
`text_ids` and `text_attention` [N, L] (WordPiece ids of `text_raw` with the encoder's own
tokenizer), `text_states` [N, L, H] float32 and `text_encoder` (which encoder made them:
name, weights sha256, width). The table's variant `states` reads them (see
msabench.data.table). The output is always .npz (Parquet has no tidy [N, L, H] column).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from msabench import paths
from msabench.data import pretrained
from msabench.data import table
from msabench.data.core import SPLITS
from msabench.data.mmsa import read_pickle
from msabench.errors import MsabenchError


def encode_states(ids: np.ndarray, mask: np.ndarray, encoder, batch_size: int = 64, progress: bool = True,
                  label: str = "") -> np.ndarray:
    """Last-layer states [N, L, H] float32 of `encoder` (in eval mode) for token ids [N, L] and mask [N, L]."""
    import torch
    from tqdm import tqdm

    out = np.zeros((len(ids), ids.shape[1], encoder.config.hidden_size), dtype=np.float32)
    starts = range(0, len(ids), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=label or "embed", unit="batch", disable=not progress or None):
            rows = slice(start, start + batch_size)
            states = encoder(input_ids=torch.from_numpy(ids[rows].astype(np.int64)),
                             attention_mask=torch.from_numpy(mask[rows].astype(np.int64))).last_hidden_state
            out[rows] = states.numpy()
    return out


def embed_mmsa(src: str | Path, out: str | Path, spec: str = pretrained.MINILM, replace: bool = False,
               max_tokens: int = 50, batch_size: int = 64, progress: bool = True) -> dict[str, tuple]:
    """Write `src` with a `text` field of `spec`'s token states to `out`; {split: states shape}."""
    src, out = paths.input_file(src, "data embed"), paths.output_file(out, "--out")
    if out.exists():
        raise MsabenchError(f"--out {out}: the file exists; data embed writes a new file")
    pretrained.folder(spec, f"data embed --encoder {spec}")  # a missing package or folder: now, in one line
    raw = read_pickle(src)
    if not isinstance(raw, dict) or not all(isinstance(raw.get(s), dict) for s in SPLITS):
        raise MsabenchError(f"{src}: not an MMSA-layout file (a dict with splits {', '.join(SPLITS)})")
    for name in SPLITS:  # every problem found before any encoding
        part, where = raw[name], f"{src}, split {name}"
        if "text" in part and not replace:
            raise MsabenchError(f"{where}: already has token features 'text' (shape {np.shape(part['text'])}); "
                                "pass --replace to compute them again")
        if "text_bert" not in part and "raw_text" not in part:
            raise MsabenchError(f"{where}: neither 'text_bert' (token ids) nor 'raw_text' (transcripts) to embed")
        if "text_bert" in part:
            bert = np.asarray(part["text_bert"])
            if bert.ndim != 3 or bert.shape[1] != 3:
                raise MsabenchError(f"{where}: key 'text_bert' must have shape [N, 3, L], got {bert.shape}")
            pretrained.check_ids(bert[:, 0, :].astype(np.int64), spec, where)
    shapes, encoder = {}, pretrained.load_encoder(spec, f"data embed --encoder {spec}").eval()
    for name in SPLITS:
        part = raw[name]
        if "text_bert" not in part:
            ids, mask = pretrained.encode(np.asarray(part["raw_text"]).reshape(-1).tolist(), spec, max_tokens)
            part["text_bert"] = np.stack([ids, mask, np.zeros_like(ids)], 1).astype(np.float32)
        bert = np.asarray(part["text_bert"])
        part["text"] = encode_states(bert[:, 0, :].astype(np.int64), bert[:, 1, :].astype(np.int64), encoder,
                                     batch_size, progress, label=name)
        shapes[name] = part["text"].shape
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(raw, f, protocol=4)
        paths.publish(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return shapes


def encoder_record(spec: str) -> str:
    return f"{spec}|{pretrained.identity(spec)}|{pretrained.config(spec).get('hidden_size', '')}"


def embed_table(src: str | Path, out: str | Path, spec: str = pretrained.MINILM, replace: bool = False,
                max_tokens: int = 50, batch_size: int = 64, progress: bool = True) -> tuple:
    """Write feature table `src` with token ids and `spec`'s token states to `out` (.npz); their shape."""
    src, out = paths.input_file(src, "data embed"), paths.output_file(out, "--out")
    if out.exists():
        raise MsabenchError(f"--out {out}: the file exists; data embed writes a new file")
    if out.suffix != ".npz":
        raise MsabenchError(f"--out {out}: a feature table with token states is written as .npz, got {out.suffix!r}")
    pretrained.folder(spec, f"data embed --encoder {spec}")
    raw = table.read_raw(src)
    if "text_states" in raw and not replace:
        raise MsabenchError(f"{src}: already has token features 'text_states' (shape {raw['text_states'].shape}); "
                            "pass --replace to compute them again")
    if "text_raw" not in raw:
        raise MsabenchError(f"{src}: key 'text_raw' (the transcripts) is missing: nothing to embed")
    text = np.asarray(raw["text_raw"])
    if text.ndim != 1 or text.dtype.kind not in "US":
        raise MsabenchError(f"{src}: key 'text_raw' must be 1-d strings [N], got shape {text.shape} dtype {text.dtype}")
    ids, mask = pretrained.encode(text.astype(str).tolist(), spec, max_tokens)
    encoder = pretrained.load_encoder(spec, f"data embed --encoder {spec}").eval()
    raw.update(text_ids=ids, text_attention=mask,
               text_states=encode_states(ids, mask, encoder, batch_size, progress, label="table"),
               **{table.ENCODER_KEY: np.array(encoder_record(spec))})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial.npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez(tmp, **raw)
        paths.publish(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return raw["text_states"].shape


def embed(src: str | Path, out: str | Path, spec: str = pretrained.MINILM, **kw):
    """`msabench data embed`: a feature table (.npz/.parquet) or an MMSA-layout pickle, by its suffix."""
    if Path(src).suffix in table.SUFFIXES:
        return {"table": embed_table(src, out, spec, **kw)}
    return embed_mmsa(src, out, spec, **kw)
