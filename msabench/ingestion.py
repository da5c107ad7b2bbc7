"""The ingestion side of a job: build, fit and predict, with model inputs only.

A model sees train and valid (labels included) and evaluation batches the host has
already corrupted, never the evaluation labels; scoring happens elsewhere (runner.score,
in the driver). Two kinds of model host share one interface:

- `Local`: a bundled model, msabench's own code, in the host's process;
- `Remote`: a submission file in an isolation worker (msabench.isolation), which runs the
  `_op_*` functions at the bottom of this module. The host writes train and valid to a file
  the worker reads; batches and predictions go over the pipe, predictions through the
  worker-to-host decoder that builds plain data only.

A model whose `selects_on_test` is True is fitted with the labelled test split (LNLN's
checkpoint choice, reproduced on purpose); only bundled models may ask: a submission that
does is refused, since its process never holds evaluation labels.
"""

from __future__ import annotations

import gc
import os
import pickle
from pathlib import Path

import numpy as np

from msabench import devices, isolation
from msabench import submission as submission_mod
from msabench.data import DatasetInfo, Split
from msabench.errors import MsabenchError
from msabench.interface import Batch, Mask


def seed_everything(seed: int) -> None:
    """Seed every generator a model might use, so an unseeded model is still repeatable."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def selects_on_test(model) -> bool:
    """A model that asks for the test split to choose its weights (LNLN's flaw, reproduced on purpose)."""
    return getattr(model, "selects_on_test", False) is True


def refuse_test_selection(model, where: str) -> None:
    if selects_on_test(model):
        raise MsabenchError(f"{where}: the model sets selects_on_test = True, but checkpoint selection on the test "
                            "split is reserved for bundled models (to measure LNLN's flaw); a submission never sees "
                            "evaluation labels")


def fit_call(model, seed: int) -> str:
    return f"fit(train, valid, seed={seed}{', test' if selects_on_test(model) else ''})"


def fit(model, train: Split, valid: Split, seed: int, test: Split | None = None, where: str = "model") -> None:
    """The one place a model is fitted: train and valid, and test only for a model that selects on it."""
    call = fit_call(model, seed)
    try:
        if selects_on_test(model):
            if test is None:
                raise MsabenchError(f"{where}: {call}: the labelled test split is not available here")
            model.fit(train, valid, seed, test=test)
        else:
            model.fit(train, valid, seed)
    except MsabenchError:
        raise
    except (Exception, SystemExit) as e:  # a submission's sys.exit is its failure, not the run's
        raise MsabenchError(f"{where}: {call} raised {submission_mod.describe(e, Path(where))}") from None


def predict(model, batch: Batch, mask: Mask, at: str, where: str) -> np.ndarray:
    """One batch through `model.predict`, checked: float64 [B], finite, real."""
    try:
        raw = model.predict(batch, mask)
    except MsabenchError:
        raise
    except (Exception, SystemExit) as e:
        raise MsabenchError(f"{at}: predict raised {submission_mod.describe(e, Path(where))}") from None
    return submission_mod.predictions(raw, len(batch), at, batch.ids)


def _plain(value, depth: int = 0):
    """Manifest-safe copy of what a model says about its compute: strings, numbers, lists, dicts."""
    if depth > 5:
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:500]
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in list(value)[:64]]
    if isinstance(value, dict):
        return {str(k)[:100]: _plain(v, depth + 1) for k, v in list(value.items())[:64]}
    return str(type(value).__name__)


def describe_compute(model) -> dict:
    """What a model says about where it computed, else the job's CPU threads and GPUs."""
    describe = getattr(model, "describe_compute", None)
    return describe() if callable(describe) else devices.job_environment()


class Local:
    """A model in this process: a bundled one (`sub`), or one already built (`model`, named `where`)."""

    def __init__(self, sub: submission_mod.Submission | None, model=None, where: str | None = None):
        self.sub, self.model = sub, model
        self.where = where if sub is None else str(sub.path)

    def build(self, info: DatasetInfo, seed: int) -> None:
        seed_everything(seed)
        self.model = self.sub.build(info)
        if self.sub.options is None:  # a submission file loaded in this process (--in-process, notebooks)
            refuse_test_selection(self.model, self.where)

    @property
    def can_fit(self) -> bool:
        return callable(getattr(self.model, "fit", None))

    @property
    def selects_on_test(self) -> bool:
        return selects_on_test(self.model)

    def fit(self, train: Split, valid: Split, seed: int, test: Split | None = None) -> None:
        fit(self.model, train, valid, seed, test, self.where)

    def reseed(self, seed: int) -> None:
        seed_everything(seed)

    def predict(self, batch: Batch, mask: Mask, at: str, doing: str) -> np.ndarray:
        return predict(self.model, batch, mask, at, self.where)

    def compute(self) -> dict:
        return describe_compute(self.model)

    def close(self) -> None:
        self.model = None


_INPUTS: dict = {}  # key -> (file, train, valid); the splits kept alive while their id() is the key
_count = 0


def inputs_file(train: Split, valid: Split, key: str | None = None) -> Path:
    """train and valid, pickled once per host for the workers to read; `key` names the data (default:
    the objects themselves). The two most recent files are kept."""
    global _count
    key = key or (id(train), id(valid))
    if key in _INPUTS and not _INPUTS[key][0].exists():
        del _INPUTS[key]
    if key not in _INPUTS:
        _count += 1
        path = isolation.staging() / f"train-valid-{os.getpid()}-{_count}.pkl"
        with path.open("wb") as f:
            pickle.dump({"train": train, "valid": valid}, f, protocol=pickle.HIGHEST_PROTOCOL)
        while len(_INPUTS) >= 2:
            old = _INPUTS.pop(next(iter(_INPUTS)))
            old[0].unlink(missing_ok=True)
        _INPUTS[key] = (path, train, valid)
    return _INPUTS[key][0]


class Remote:
    """A submission file's model in an isolation worker; the host side of build, fit and predict."""

    def __init__(self, sub: submission_mod.Submission, source: bytes, limits: isolation.Limits, what: str,
                 train: Split, valid: Split, threads: int | None, key: str | None = None):
        self.where, self.what, self.can_fit, self.selects_on_test = str(sub.path), what, False, False
        self.inputs = inputs_file(train, valid, key)
        copy = isolation.stage(f"submission-{sub.sha256[:16]}.py", source)  # the bytes planned, whatever the disk says
        self.worker = isolation.worker(limits)
        self._call(_op_start, (str(copy), self.where, threads), "import")

    def _call(self, fn, args: tuple, doing: str):
        return self.worker.call(fn, args, self.what, doing)

    def build(self, info: DatasetInfo, seed: int) -> None:
        self.can_fit = self._call(_op_build, (info, seed), "build(info)")

    def fit(self, train: Split, valid: Split, seed: int, test: Split | None = None) -> None:
        self._call(_op_fit, (str(self.inputs), seed), f"fit(train, valid, seed={seed})")

    def reseed(self, seed: int) -> None:
        self._call(_op_reseed, (seed,), "seeding")

    def predict(self, batch: Batch, mask: Mask, at: str, doing: str) -> np.ndarray:
        values = self._call(_op_predict, (batch, mask, at), doing)
        if not (isinstance(values, np.ndarray) and values.dtype == np.float64):
            raise MsabenchError(f"{at}: the worker returned no float64 predictions")
        return submission_mod.predictions(values, len(batch), at, batch.ids)  # checked again, here

    def compute(self) -> dict:
        return _plain(self._call(_op_compute, (), "describe_compute()"))

    def close(self) -> None:
        try:
            if self.worker.proc.poll() is None:
                self._call(_op_finish, (), "the end of its job")
        except MsabenchError:
            pass
        isolation.job_done(self.worker)


# ---- in the worker process ------------------------------------------------------------------------

_job: dict = {}  # the submission, its model and the job's settings, in the worker


def _op_start(load_path: str, shown: str, threads: int | None) -> str:
    _op_finish()
    sub = submission_mod.load(load_path, shown=Path(shown))
    ctx = devices.threads(threads)
    ctx.__enter__()
    _job.update(sub=sub, threads=ctx, shown=shown)
    return sub.name


def _op_build(info: DatasetInfo, seed: int) -> bool:
    seed_everything(seed)
    model = _job["sub"].build(info)
    refuse_test_selection(model, _job["shown"])
    _job["model"] = model
    return callable(getattr(model, "fit", None))


def _op_fit(inputs: str, seed: int) -> None:
    if _job.get("inputs") != inputs:
        with open(inputs, "rb") as f:
            _job["data"] = pickle.load(f)
        _job["inputs"] = inputs
    fit(_job["model"], _job["data"]["train"], _job["data"]["valid"], seed, None, _job["shown"])


def _op_reseed(seed: int) -> None:
    seed_everything(seed)


def _op_predict(batch: Batch, mask: Mask, at: str) -> np.ndarray:
    return predict(_job["model"], batch, mask, at, _job["shown"])


def _op_compute() -> dict:
    return _plain(describe_compute(_job.get("model")))


def _op_finish() -> None:
    ctx = _job.pop("threads", None)
    if ctx is not None:
        ctx.__exit__(None, None, None)
    for key in ("model", "sub"):
        _job.pop(key, None)
    gc.collect()


__all__ = ["Local", "Remote", "fit", "predict", "seed_everything", "selects_on_test", "inputs_file"]
