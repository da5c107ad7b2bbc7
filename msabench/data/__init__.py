"""Finding and loading datasets: the embedded synthetic set, MMSA pickles, Hugging Face folders,
utterance-level feature tables.

`load(name, variant, data=..., data_dir=...)` is the single entry point. Precedence:
an explicit `data` (a file, a folder or `hub:owner/name`), then `data_dir` or the
environment variable MSABENCH_DATA laid out like MMSA (`DIR/MOSI/Processed/unaligned_50.pkl`),
and for `synth-mosi` / `synth-sims` the in-process generator at the requested variant (`synth.VARIANTS`).
Feature-table datasets (`mosi-utt`, see `msabench.data.table`) read `data` (a `.npz` /
`.parquet` table) or the registered file name (`mosi-utterance.npz`) in `data_dir` / MSABENCH_DATA.
"""

from __future__ import annotations

import os
from pathlib import Path

from msabench import paths
from msabench.data.core import MODALITIES, SPLITS, Dataset, DatasetInfo, Split
from msabench.errors import MsabenchError

MMSA_LAYOUT = {"mosi": "MOSI", "mosei": "MOSEI", "sims": "SIMS"}
SYNTH_SEED = 0


def expected_path(data_dir: str | Path, name: str, variant: str) -> Path:
    return Path(data_dir) / MMSA_LAYOUT[name] / "Processed" / f"{variant}.pkl"


def load(name: str, variant: str, data: str | Path | None = None, data_dir: str | Path | None = None,
         text: str = "both", tokenizer: str | None = None) -> Dataset:
    """Load dataset `name`/`variant` from wherever the user keeps it.

    `tokenizer`: for a feature table's `tokens` variant, "minilm" (default) or a local tokenizer folder.
    """
    from dataclasses import replace

    from msabench.data import hf, mmsa, synth, table

    if tokenizer is not None and not (name in table.REGISTRY and variant == "tokens"):
        raise MsabenchError(f"--tokenizer applies to feature tables read as WordPiece tokens (variant 'tokens'), "
                            f"not to {name} {variant}")
    if name in table.REGISTRY:
        spec = table.spec(name, variant)
        if tokenizer is not None:
            spec = replace(spec, tokenizer=tokenizer)
        if data is None:
            return table.load(table.find(name, data_dir or os.environ.get("MSABENCH_DATA")), spec)
        path = Path(str(data))
        if path.suffix not in table.SUFFIXES:
            raise MsabenchError(f"{name} is read from a feature table (.npz or .parquet); got {path}")
        if not path.exists():
            raise MsabenchError(f"data file {path} does not exist; {table.OBTAIN.get(name, '')}")
        return table.load(paths.input_file(path, "data file"), spec)
    if data is not None:
        spec = str(data)
        if spec.startswith("hub:"):
            return hf.load_hub(spec[4:], name=name, variant=variant)
        path = Path(spec)
        if path.is_dir():
            return hf.load_folder(path)
        if not path.exists():
            raise MsabenchError(f"data file {path} does not exist; {mmsa.OBTAIN}")
        return mmsa.load(paths.input_file(path, "data file"), name, variant, text=text)
    if name in synth.GENERATED:
        return synth.make_dataset(seed=SYNTH_SEED, variant=variant, name=name)
    if name not in MMSA_LAYOUT:
        raise MsabenchError(f"unknown dataset {name!r}; known: {', '.join(synth.GENERATED)}, {', '.join(MMSA_LAYOUT)}, "
                            f"{', '.join(table.REGISTRY)}")
    data_dir = data_dir or os.environ.get("MSABENCH_DATA")
    if not data_dir:
        raise MsabenchError(
            f"no data for {name}: pass --data FILE, or --data-dir DIR (or set MSABENCH_DATA) holding "
            f"{expected_path('DIR', name, variant)}; {mmsa.OBTAIN}"
        )
    paths.input_dir(data_dir, "data folder (--data-dir / MSABENCH_DATA)")
    path = expected_path(data_dir, name, variant)
    if not path.exists():
        raise MsabenchError(f"data file {path} does not exist (expected for {name} {variant}); {mmsa.OBTAIN}")
    return mmsa.load(paths.input_file(path, "data file"), name, variant, text=text)


__all__ = ["Dataset", "DatasetInfo", "Split", "MODALITIES", "SPLITS", "load", "expected_path"]
