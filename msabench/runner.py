"""One job: masks -> model -> predictions (ingestion), then predictions -> metrics (scoring).

The unit of work is one (protocol, model, seed): build the model, fit it once on the
train split (valid for selection), then predict every condition of the protocol on the
evaluation split. The two halves never share what they hold:

- `ingest` runs where the model runs. It corrupts the evaluation inputs itself and hands
  the model batches; it is given the dataset as models see it (`Dataset.for_models`: the
  evaluation split without labels) and returns `Predictions`, nothing scored.
- `score` runs in the driver, with the labelled data: msabench's own metrics over the
  predictions, and the manifest. No number a model or its process reports is a score.

`run_job` does both in this process (bundled models, notebooks, tests); the executors put
`ingest` in workers and `score` in the driver. Imports flow one way: executors -> runner.
"""

from __future__ import annotations

import numbers
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from msabench.version import __version__
from msabench import devices, ingestion, masking, metrics, progress
from msabench import results as results_mod
from msabench import submission as submission_mod
from msabench.data import Dataset, Split
from msabench.errors import MsabenchError
from msabench.protocols import Protocol

seed_everything = ingestion.seed_everything
selects_on_test = ingestion.selects_on_test


@dataclass(frozen=True, eq=False)
class Predictions:
    """What the ingestion side of a job hands back for one protocol: predictions, no labels, no scores."""

    protocol: str
    seed: int
    values: np.ndarray  # [C, N] float64: conditions in protocol order, samples in split order
    fit_seconds: float
    predict_seconds: float
    selects_on_test: bool
    compute: dict


def condition_metrics(pred: np.ndarray, label: np.ndarray, cond: np.ndarray, protocol: Protocol) -> dict:
    """Per-condition metrics and their aggregates under `protocol` (metrics.by_condition)."""
    return metrics.by_condition(pred, label, cond, [(c.name, c.level) for c in protocol.conditions],
                                protocol.metric_kind, protocol.aggregation)


def identity(protocol: Protocol, dataset: Dataset, sub: submission_mod.Submission, seed: int,
             masks_fp: str) -> dict:
    return {"protocol_fingerprint": protocol.fingerprint, "dataset_fingerprint": dataset.fingerprint,
            "submission_sha256": sub.sha256, "masks_fingerprint": masks_fp, "seed": seed}


CHUNK_BYTES = 64 << 20  # corrupt this much input at a time, then cut batches out of it as views


def predict_conditions(model, split: Split, protocol: Protocol, observed: dict, seed: int, batch_size: int,
                       where: str, label: str = "") -> np.ndarray:
    """Predictions [C, N] for every condition; batches never change what a sample sees.

    `model` is a built model, or a model host (ingestion.Local / ingestion.Remote)."""
    host = model if isinstance(model, (ingestion.Local, ingestion.Remote)) else ingestion.Local(None, model, where)
    n = len(split)
    row_bytes = sum(a.nbytes for a in split.arrays().values()) / max(n, 1)
    per_chunk = batch_size * max(1, int(CHUNK_BYTES // max(row_bytes * batch_size, 1)))
    out = np.empty((len(protocol.conditions), n), dtype=np.float64)
    for ci, cond in enumerate(protocol.conditions):
        progress.doing(f"{label or where} seed {seed}: predict {protocol.name} {cond.name} "
                       f"({ci + 1}/{len(protocol.conditions)})")
        doing = f"predict(batch, mask) on {protocol.name}, condition {cond.name}, seed {seed}"
        for chunk_start in range(0, n, per_chunk):
            chunk_rows = slice(chunk_start, min(chunk_start + per_chunk, n))
            chunk, chunk_mask = masking.corrupt(split, observed[cond.name], chunk_rows, protocol.reveal_mask)
            for start in range(0, len(chunk), batch_size):
                rows = slice(start, start + batch_size)
                batch, mask = chunk.rows(rows), chunk_mask.rows(rows)
                first = chunk_start + start
                at = f"{where}: condition {cond.name}, seed {seed}, samples {first}-{first + len(batch) - 1}"
                out[ci, first:first + len(batch)] = host.predict(batch, mask, at, doing)
    return out


def ingest(host, inputs: Dataset, protocols: list[Protocol], seed: int, batch_size: int = 64,
           masks: dict | None = None, test: Split | None = None, label: str = "") -> list[Predictions]:
    """Build and fit the model once for `seed`, then predict every condition of each protocol.

    `host`: ingestion.Local or ingestion.Remote. `inputs`: the dataset as models see it (its
    evaluation splits without labels). `test`: the labelled test split, handed to `fit` only
    for a bundled model that selects on it. `masks`: {protocol: observed} already computed.
    """
    check_batch_size(batch_size)
    devices.reset_peak_memory()
    host.build(inputs.info, seed)
    t0 = time.perf_counter()
    if host.can_fit:
        progress.doing(f"{label or host.where} seed {seed}: fit")
        host.fit(inputs["train"], inputs["valid"], seed, test if host.selects_on_test else None)
    fit_s = time.perf_counter() - t0
    compute = host.compute()
    out = []
    for protocol in protocols:
        split = inputs[protocol.split]
        observed = (masks or {}).get(protocol.name)
        observed = observed if observed is not None else masking.observed(protocol, split, seed)
        host.reseed(seed)
        t1 = time.perf_counter()
        values = predict_conditions(host, split, protocol, observed, seed, batch_size, host.where, label)
        out.append(Predictions(protocol=protocol.name, seed=seed, values=values, fit_seconds=fit_s,
                               predict_seconds=time.perf_counter() - t1, selects_on_test=host.selects_on_test,
                               compute={**compute, "gpu_peak_mb": devices.peak_memory_mb()}))
    return out


def score(pred: Predictions, dataset: Dataset, protocol: Protocol, sub: submission_mod.Submission,
          batch_size: int, masks_fp: str | None = None) -> results_mod.UnitResult:
    """The driver's half: labels from `dataset` (the labelled one), metrics by msabench, the manifest."""
    split = dataset[protocol.split]
    n_cond = len(protocol.conditions)
    if pred.protocol != protocol.name or pred.values.shape != (n_cond, len(split)):
        raise MsabenchError(f"{sub.path}: predictions for {pred.protocol} of shape {pred.values.shape} do not fit "
                            f"protocol {protocol.name} ({n_cond} conditions x {len(split)} samples)")
    masks_fp = masks_fp or masking.fingerprint(protocol, split, pred.seed)
    cond = np.repeat(np.array([c.name for c in protocol.conditions]), len(split))
    labels = np.tile(split.labels.astype(np.float64), n_cond)
    flat = np.ascontiguousarray(pred.values, dtype=np.float64).reshape(-1)
    manifest = {
        "schema": results_mod.RESULT_SCHEMA,
        "msabench_version": __version__,
        "protocol": protocol.name,
        "protocol_version": protocol.version,
        "model": sub.name,
        "submission_path": str(sub.path),
        "dataset": dataset.name,
        "dataset_variant": dataset.variant,
        "dataset_source": dataset.source,
        "split": protocol.split,
        "n_samples": len(split),
        "conditions": [c.name for c in protocol.conditions],
        "batch_size": batch_size,
        "fit_seconds": round(pred.fit_seconds, 3),
        "selects_on_test": bool(pred.selects_on_test and sub.options is not None),  # only bundled models may
        "predict_seconds": round(pred.predict_seconds, 3),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, **_torch_version()},
        "compute": pred.compute,  # as the job's host reported it (gpu_peak_mb: None when no CUDA was used)
        "labels_sha256": results_mod.labels_hash(split.ids, split.labels),
        # the seed that drew this unit's test masks (Protocol.mask_seed; None: kind 'inter' draws none)
        "mask_seed": None if protocol.kind == "inter" else protocol.mask_seed(pred.seed),
        # the code that made it (a file's bytes; a bundled model's sources): `msabench runs --check` shows drift
        "code_sha256": sub.code,
        "model_version": sub.version,  # a bundled model's declared VERSION (part of submission_sha256)
        **identity(protocol, dataset, sub, pred.seed, masks_fp),
    }
    return results_mod.UnitResult(
        protocol=protocol.name, model=sub.name, seed=pred.seed, ids=np.tile(split.ids, n_cond), predictions=flat,
        labels=labels, conditions=cond, metrics=condition_metrics(flat, labels, cond, protocol), manifest=manifest)


def run_unit(sub: submission_mod.Submission, dataset: Dataset, protocol: Protocol, seed: int,
             batch_size: int = 64, observed: dict | None = None,
             masks_fp: str | None = None, threads: int | None = None) -> results_mod.UnitResult:
    """Fit (if the model can) and evaluate one seed over every condition; nothing is written.

    `observed` and `masks_fp` may be passed when the caller has already computed them.
    """
    masks = None if observed is None else {protocol.name: (observed, masks_fp)}
    return run_job(sub, dataset, [protocol], seed, batch_size, masks, threads)[0]


def run_job(sub: submission_mod.Submission, dataset: Dataset, protocols: list[Protocol], seed: int,
            batch_size: int = 64, masks: dict | None = None, threads: int | None = None
            ) -> list[results_mod.UnitResult]:
    """`ingest` in this process (the model gets `dataset.for_models`), then `score` each protocol.

    For msabench's own models and for debugging; the executors run file submissions in a
    worker (msabench.isolation). `threads`: the CPU threads torch may use in this job (None
    leaves torch's setting as it is). `masks`: {protocol: (observed, fingerprint)}.
    """
    check_batch_size(batch_size)
    inputs = dataset.for_models({p.split for p in protocols})
    observed = {name: m[0] for name, m in (masks or {}).items()}
    with devices.threads(threads):
        host = ingestion.Local(sub)
        try:
            preds = ingest(host, inputs, protocols, seed, batch_size, observed,
                           test=dataset.splits.get("test") if sub.selects_on_test else None)
        finally:
            host.close()
    fps = {name: m[1] for name, m in (masks or {}).items()}
    return [score(p, dataset, proto, sub, batch_size, fps.get(proto.name)) for p, proto in zip(preds, protocols)]


def fit(model, dataset: Dataset, seed: int) -> None:
    """Fit a built model on `dataset` (test only for a model that selects on it): `msabench train`."""
    ingestion.fit(model, dataset["train"], dataset["valid"], seed, dataset.splits.get("test"))


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise MsabenchError(f"--batch-size must be a whole number >= 1, got {batch_size}")


def _torch_version() -> dict:
    torch = sys.modules.get("torch")
    return {"torch": torch.__version__} if torch is not None else {}
