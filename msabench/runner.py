"""One job: masks -> model -> predictions -> metrics, for one model and seed.

The unit of work is one (protocol, model, seed): build the model, fit it once on the
train split (valid for selection), then predict every condition of the protocol on the
evaluation split. `run_job` is a pure function of its inputs so any executor can run
it; `msabench.executors` plans grids, skips finished units and writes atomically (and
owns the notebook entry point `run`), so imports flow one way: executors -> runner.
"""

from __future__ import annotations

import numbers
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

import msabench
from msabench import devices, masking, metrics
from msabench import results as results_mod
from msabench import submission as submission_mod
from msabench.data import Dataset
from msabench.errors import MsabenchError
from msabench.protocols import Protocol


def seed_everything(seed: int) -> None:
    """Seed every generator a submission might use, so an unseeded model is still repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def condition_metrics(pred: np.ndarray, label: np.ndarray, cond: np.ndarray, protocol: Protocol) -> dict:
    """Per-condition metrics and their aggregates (mean over conditions, trapezoid area over rates)."""
    per = {c.name: metrics.compute(pred[cond == c.name], label[cond == c.name], protocol.metric_kind)
           for c in protocol.conditions}
    names = metrics.METRICS[protocol.metric_kind]
    agg = {}
    if "mean" in protocol.aggregation:
        agg["mean"] = {m: float(np.mean([per[c][m] for c in per])) for m in names}
    if "area" in protocol.aggregation:
        levels = np.array([c.level for c in protocol.conditions])
        order = np.argsort(levels, kind="stable")
        agg["area"] = {m: float(np.trapezoid(np.array([per[protocol.conditions[i].name][m] for i in order]),
                                             levels[order])) for m in names}
    return {"conditions": per, "aggregate": agg}


def identity(protocol: Protocol, dataset: Dataset, sub: submission_mod.Submission, seed: int,
             masks_fp: str) -> dict:
    return {"protocol_fingerprint": protocol.fingerprint, "dataset_fingerprint": dataset.fingerprint,
            "submission_sha256": sub.sha256, "masks_fingerprint": masks_fp, "seed": seed}


CHUNK_BYTES = 64 << 20  # corrupt this much input at a time, then cut batches out of it as views


def predict_conditions(model, split, protocol: Protocol, observed: dict, seed: int, batch_size: int,
                       where: str, step=None) -> np.ndarray:
    """Predictions [C, N] for every condition; batches never change what a sample sees."""
    n = len(split)
    row_bytes = sum(a.nbytes for a in split.arrays().values()) / max(n, 1)
    per_chunk = batch_size * max(1, int(CHUNK_BYTES // max(row_bytes * batch_size, 1)))
    out = np.empty((len(protocol.conditions), n), dtype=np.float64)
    for ci, cond in enumerate(protocol.conditions):
        if step is not None:
            step(f"predict(batch, mask) on {protocol.name}, condition {cond.name}, seed {seed}")
        for chunk_start in range(0, n, per_chunk):
            chunk_rows = slice(chunk_start, min(chunk_start + per_chunk, n))
            chunk, chunk_mask = masking.corrupt(split, observed[cond.name], chunk_rows, protocol.reveal_mask)
            for start in range(0, len(chunk), batch_size):
                rows = slice(start, start + batch_size)
                batch, mask = chunk.rows(rows), chunk_mask.rows(rows)
                first = chunk_start + start
                at = f"{where}: condition {cond.name}, seed {seed}, samples {first}-{first + len(batch) - 1}"
                try:
                    raw = model.predict(batch, mask)
                except MsabenchError:
                    raise
                except (Exception, SystemExit) as e:  # a submission's sys.exit is its failure, not the run's
                    raise MsabenchError(f"{at}: predict raised {submission_mod._describe(e, Path(where))}") from None
                out[ci, first:first + len(batch)] = submission_mod.predictions(raw, len(batch), at, batch.ids)
    return out


def run_unit(sub: submission_mod.Submission, dataset: Dataset, protocol: Protocol, seed: int,
             batch_size: int = 64, observed: dict | None = None,
             masks_fp: str | None = None, threads: int | None = None) -> results_mod.UnitResult:
    """Fit (if the model can) and evaluate one seed over every condition; nothing is written.

    `observed` and `masks_fp` may be passed when the caller has already computed them.
    """
    masks = None if observed is None else {protocol.name: (observed, masks_fp)}
    return run_job(sub, dataset, [protocol], seed, batch_size, masks, threads)[0]


def run_job(sub: submission_mod.Submission, dataset: Dataset, protocols: list[Protocol], seed: int,
            batch_size: int = 64, masks: dict | None = None, threads: int | None = None,
            step=None) -> list[results_mod.UnitResult]:
    """Build and fit the model once for `seed`, then evaluate it under each protocol (same dataset).

    `threads`: the CPU threads torch may use in this job (the CPUs the executor gave it);
    None leaves torch's setting as it is. `step(text)`, if given, hears which call of the
    submission is about to run (an isolated job's driver names it if the process dies).
    """
    check_batch_size(batch_size)
    with devices.threads(threads):
        return _run_job(sub, dataset, protocols, seed, batch_size, masks, step or (lambda text: None))


def selects_on_test(model) -> bool:
    """A model that asks for the test split to choose its weights (LNLN's flaw, reproduced on purpose)."""
    return getattr(model, "selects_on_test", False) is True


def fit(model, dataset: Dataset, seed: int) -> None:
    """The one place a model is fitted: train and valid, and test only for a model that selects on it."""
    if selects_on_test(model):
        model.fit(dataset["train"], dataset["valid"], seed, test=dataset["test"])
    else:
        model.fit(dataset["train"], dataset["valid"], seed)


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise MsabenchError(f"--batch-size must be a whole number >= 1, got {batch_size}")


def _run_job(sub, dataset, protocols, seed, batch_size, masks, step) -> list[results_mod.UnitResult]:
    where = str(sub.path)
    seed_everything(seed)
    devices.reset_peak_memory()
    step("build(info)")
    model = sub.build(dataset.info)
    t0 = time.perf_counter()
    if callable(getattr(model, "fit", None)):
        call = f"fit(train, valid, seed={seed}{', test' if selects_on_test(model) else ''})"
        step(call)
        try:
            fit(model, dataset, seed)
        except MsabenchError:
            raise
        except (Exception, SystemExit) as e:
            raise MsabenchError(f"{where}: {call} raised {submission_mod._describe(e, sub.path)}") from None
    fit_s = time.perf_counter() - t0
    describe = getattr(model, "describe_compute", None)
    compute = describe() if callable(describe) else devices.job_environment()
    units = []
    for protocol in protocols:
        split = dataset[protocol.split]
        observed, masks_fp = (masks or {}).get(protocol.name, (None, None))
        observed = observed if observed is not None else masking.observed(protocol, split, seed)
        masks_fp = masks_fp or masking.fingerprint(protocol, split, seed, observed)
        seed_everything(seed)
        t1 = time.perf_counter()
        pred = predict_conditions(model, split, protocol, observed, seed, batch_size, where, step)
        predict_s = time.perf_counter() - t1
        peak_mb = devices.peak_memory_mb()
        n_cond = len(protocol.conditions)
        cond = np.repeat(np.array([c.name for c in protocol.conditions]), len(split))
        labels = np.tile(split.labels.astype(np.float64), n_cond)
        flat = pred.reshape(-1)
        manifest = {
            "schema": results_mod.RESULT_SCHEMA,
            "msabench_version": msabench.__version__,
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
            "fit_seconds": round(fit_s, 3),
            "selects_on_test": selects_on_test(model),  # checkpoints chosen on the test split: a protocol flaw
            "predict_seconds": round(predict_s, 3),
            "versions": {"python": platform.python_version(), "numpy": np.__version__, **_torch_version()},
            "compute": {**compute, "gpu_peak_mb": peak_mb},  # since the job started (None: no CUDA used)
            **identity(protocol, dataset, sub, seed, masks_fp),
        }
        units.append(results_mod.UnitResult(
            protocol=protocol.name, model=sub.name, seed=seed, ids=np.tile(split.ids, n_cond), predictions=flat,
            labels=labels, conditions=cond, metrics=condition_metrics(flat, labels, cond, protocol),
            manifest=manifest))
    return units


def _torch_version() -> dict:
    torch = sys.modules.get("torch")
    return {"torch": torch.__version__} if torch is not None else {}
