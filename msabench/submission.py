"""Loading a submission file (or a bundled model by name) and holding it to the contract.

The file is imported under a private module name; anything that goes wrong while
importing, building, fitting or predicting becomes one line naming the file, the
step and, for predictions, the condition, seed and sample.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from msabench.data.core import DatasetInfo
from msabench.errors import MsabenchError

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"


def bundled() -> dict[str, Path]:
    """Bundled model names -> their files (every public module in msabench/baselines/)."""
    return {p.stem.replace("_", "-"): p for p in sorted(BASELINE_DIR.glob("*.py")) if not p.stem.startswith("_")}


@dataclass(frozen=True)
class Submission:
    name: str
    path: Path
    sha256: str  # of the file's bytes: any edit makes stored results stale
    factory: Callable[[DatasetInfo], Any]
    options_cls: type | None = None  # bundled models: their options dataclass
    options: Any = None  # bundled models: the parsed options

    def check(self, info: DatasetInfo, gpus: int | None) -> None:
        """Bundled torch models: options that cannot work on this data or on `gpus` GPUs fail now, in one line."""
        from msabench.baselines._torch import Options, check_options

        if isinstance(self.options, Options):
            check_options(self.options, info, gpus, self.name)

    def build(self, info: DatasetInfo):
        """Build a fresh model; checks it has predict (and a callable fit if any)."""
        try:
            model = self.factory(info)
        except MsabenchError:
            raise
        except Exception as e:
            raise MsabenchError(f"{self.path}: build(info) raised {_describe(e, self.path)}") from None
        if not callable(getattr(model, "predict", None)):
            raise MsabenchError(f"{self.path}: the model built has no predict(batch, mask) method")
        if hasattr(model, "fit") and not callable(model.fit):
            raise MsabenchError(f"{self.path}: the model's fit attribute is not callable")
        return model


def _describe(e: BaseException, path: Path) -> str:
    """`TypeError: msg (line N)`, with the deepest line number inside the submission file."""
    line = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            line = f" (line {frame.lineno})"
            break
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg}{line}"


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`prlf:rounds=2,amre=off` -> ("prlf", {"rounds": "2", "amre": "off"})."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise MsabenchError(f"model {spec}: options are written NAME:key=value,key=value; got {item!r}")
        options[key.strip()] = value.strip()
    return name, options


def load(spec: str | Path) -> Submission:
    """A submission by file path, or a bundled model by name with options (`prlf:rounds=2`)."""
    spec = str(spec)
    models = bundled()
    base, raw_options = split_spec(spec) if spec.split(":")[0] in models else (spec, {})
    if base in models:
        path = models[base]
    else:
        path = Path(spec)
        if not path.exists():
            hint = f"; bundled models: {', '.join(models)}" if path.suffix != ".py" else ""
            raise MsabenchError(f"submission {spec} is neither a file nor a bundled model{hint}")
        if not path.is_file() or path.suffix != ".py":
            raise MsabenchError(f"submission {spec} is not a Python file")
    path = path.resolve()
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        raise MsabenchError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    module_name = f"msabench_submission_{digest[:16]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise MsabenchError(f"{path}: importing the submission failed: {_describe(e, path)}") from None
    factory = _factory(module, path)
    name = getattr(module, "NAME", None) or getattr(factory, "name", None)
    if not isinstance(name, str) or not name:
        name = base if base in models else path.stem
    options = None
    if base in models:
        factory, name, digest, options = _bundled(module, base, raw_options, factory, digest)
    return Submission(name=name, path=path, sha256=digest, factory=factory,
                      options_cls=getattr(module, "OPTIONS", None) if base in models else None, options=options)


def _bundled(module, base: str, raw_options: dict, factory, digest: str):
    """Bundled models: options checked now (not mid-run), and part of the name and the hash."""
    options_cls = getattr(module, "OPTIONS", None)
    if raw_options and options_cls is None:
        raise MsabenchError(f"model {base} takes no options")
    if options_cls is None:
        return factory, base, digest, None
    from msabench.baselines._torch import code_hash, parse_options

    options = parse_options(options_cls, raw_options, base)
    shown = ",".join(f"{k}={getattr(options, k)}" for k in sorted(raw_options))
    name = f"{base}[{shown}]" if shown else base
    digest = hashlib.sha256(f"{code_hash(Path(module.__file__))}|{options!r}".encode()).hexdigest()
    return (lambda info: module.build(info, options)), name, digest, options


def _factory(module, path: Path) -> Callable[[DatasetInfo], Any]:
    build = getattr(module, "build", None)
    if callable(build):
        return build
    classes = [obj for obj in vars(module).values()
               if inspect.isclass(obj) and obj.__module__ == module.__name__ and callable(getattr(obj, "predict", None))]
    if len(classes) == 1:
        cls = classes[0]
        try:
            takes_info = len(inspect.signature(cls).parameters) > 0
        except (TypeError, ValueError):
            takes_info = True
        if takes_info:
            return cls

        def factory(info):
            return cls()

        factory.name = getattr(cls, "name", None)
        return factory
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise MsabenchError(f"{path}: defines several model classes ({names}) and no build(info); add build(info)")
    raise MsabenchError(f"{path}: defines neither build(info) nor a model class with a predict(batch, mask) method")


def predictions(out: Any, n: int, where: str, ids: np.ndarray) -> np.ndarray:
    """Model output -> float64 [n]; shape and finiteness checked, one line on failure."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise MsabenchError(f"{where}: predict returned {type(out).__name__}, not numbers: {e}") from None
    if arr.shape == (n, 1):
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise MsabenchError(f"{where}: predict returned shape {tuple(arr.shape)} for a batch of {n}; expected ({n},)")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MsabenchError(f"{where}: predict returned {arr[i]} for sample {ids[i]} ({int(bad.sum())} non-finite in the batch)")
    return arr


def ablations(spec: str) -> list[str]:
    """`prlf` -> ["prlf:amre=off", ...]: one variant per component switch the model adds to the shared options."""
    base, raw = split_spec(spec)
    if base not in bundled():
        return []
    options_cls = load(base).options_cls
    if options_cls is None:
        return []
    from dataclasses import fields

    from msabench.baselines._torch import Options

    shared = {f.name for f in fields(Options)}
    switches = [f.name for f in fields(options_cls) if f.name not in shared and isinstance(f.default, bool) and f.default]
    prefix = ",".join(f"{k}={v}" for k, v in raw.items())
    return [f"{base}:{prefix + ',' if prefix else ''}{name}=off" for name in switches]
