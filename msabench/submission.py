"""Loading a submission file (or a bundled model by name) and holding it to the contract.

The file is imported under a private module name; anything that goes wrong while
importing, building, fitting or predicting becomes one line naming the file, the
step and, for predictions, the condition, seed and sample. The driver of a grid only
`probe`s a file (imports it in a worker process: see msabench.isolation), so a
submission that exits or crashes at import cannot take the driver down.

A submission's name (its results folder, its row in tables) is fixed before anything
runs, from the first of: a module-level `NAME`; a `name` class attribute of its model
class; the file name without `.py`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
import types
from functools import lru_cache
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from msabench import interface
from msabench.data.core import DatasetInfo
from msabench.errors import MsabenchError

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
RUN_EXTRA = ("pip install 'msabench[run]' (torch and matplotlib; for the CPU build of torch first: pip install torch "
             "--index-url https://download.pytorch.org/whl/cpu)")


class NotInstalled(MsabenchError):
    """A bundled model whose packages (torch, ...) this install lacks: reading and comparing stored results
    does not need them (`display_name`, `runs.status` fall back), running the model does."""

    @classmethod
    def of(cls, base: str, e: ModuleNotFoundError) -> "NotInstalled":
        return cls(f"model {base} needs the package {e.name!r}, not installed here: {RUN_EXTRA}")


def bundled() -> dict[str, Path]:
    """Bundled model names -> their files (every public module in msabench/baselines/)."""
    return {p.stem.replace("_", "-"): p for p in sorted(BASELINE_DIR.glob("*.py")) if not p.stem.startswith("_")}


@dataclass(frozen=True)
class Submission:
    name: str
    path: Path
    # The identity its results are stored under (manifest key submission_sha256): a file's bytes (any edit
    # makes its results stale); a bundled model's name, declared VERSION and options (`identity`).
    sha256: str
    factory: Callable[[DatasetInfo], Any] | None  # None: probed only; imported when first built
    options_cls: type | None = None  # bundled models: their options dataclass
    options: Any = None  # bundled models: the parsed options
    code_sha256: str = ""  # the code that runs (bundled: `code_digest`); "" for a file: its sha256
    version: int | None = None  # a bundled model's declared VERSION
    spec: str = ""  # a bundled model's spec (`prlf:amre=off`)
    display: str = ""  # its name as readers know it (`display_name`); "" for a file: its name

    @property
    def code(self) -> str:
        return self.code_sha256 or self.sha256

    @property
    def selects_on_test(self) -> bool:
        """A bundled model set to choose its checkpoints on the test split (LNLN's flaw, on purpose)."""
        return getattr(self.options, "selection", None) == "test-per-metric"

    def check(self, info: DatasetInfo, gpus: int | None) -> None:
        """Bundled torch models: options that cannot work on this data or on `gpus` GPUs fail now, in one line."""
        if self.options is None:  # a file submission, or a bundled model without options: nothing to check
            return
        from msabench.torch_baseline import Options, check_options

        if isinstance(self.options, Options):
            check_options(self.options, info, gpus, self.name)
        elif callable(getattr(self.options, "check", None)):  # other bundled families check themselves
            self.options.check(info, gpus, self.name)

    def text_read(self, info: DatasetInfo) -> str:
        """What this model reads as text on `info`: 'ids', 'features', 'clean_features' (features it was told
        carry the clean transcript's context), 'none' (no text), or 'unknown' (a file: it gets both)."""
        if self.version is None:
            return "unknown"
        reader = getattr(self.options, "text_read", None)
        return reader(info) if callable(reader) else "none"

    def build(self, info: DatasetInfo):
        """Build a fresh model; checks it has predict (and a callable fit if any)."""
        factory = self.factory or load(self.path).factory
        try:
            model = factory(info)
        except MsabenchError:
            raise
        except (Exception, SystemExit) as e:
            raise MsabenchError(f"{self.path}: build(info) raised {describe(e, self.path)}") from None
        if not (isinstance(model, interface.Model) and callable(model.predict)):  # the contract
            raise MsabenchError(f"{self.path}: the model built has no predict(batch, mask) method")
        if hasattr(model, "fit") and not callable(model.fit):
            raise MsabenchError(f"{self.path}: the model's fit attribute is not callable")
        own = getattr(model, "name", None) if self.options_cls is None else None
        if isinstance(own, str) and own and own != self.name:
            raise MsabenchError(
                f"{self.path}: the model built names itself {own!r}, but its results are stored as {self.name!r}, "
                f"a name fixed before anything runs (module NAME, else the model class's name attribute, else the "
                f"file name); set NAME = {own!r} at module level")
        return model


def describe(e: BaseException, path: Path) -> str:
    """`TypeError: msg (line N)`, with the deepest line number inside the submission file."""
    line = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            line = f" (line {frame.lineno})"
            break
    if isinstance(e, SystemExit):
        return f"SystemExit: the submission called sys.exit({e.code!r}){line}"
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises is still the submission's
        text = "(its message could not be read: its __str__ raised)"
    msg = text.splitlines()[0][:1000] if text else ""
    return f"{type(e).__name__}: {msg}{line}"


POSITIONAL = {"mmsa": "model"}  # `mmsa:lf_dnn` is `mmsa:model=lf_dnn`


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`prlf:rounds=2,amre=off` -> ("prlf", {"rounds": "2", "amre": "off"}); `mmsa:lf_dnn` -> ("mmsa", {"model": "lf_dnn"})."""
    name, _, rest = spec.partition(":")
    options = {}
    for i, item in enumerate(filter(None, rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq and i == 0 and name in POSITIONAL:
            key, eq, value = POSITIONAL[name], "=", item
        if not eq or not key.strip():
            raise MsabenchError(f"model {spec}: options are written NAME:key=value,key=value; got {item!r}")
        options[key.strip()] = value.strip()
    return name, options


def is_bundled(spec: str | Path) -> bool:
    """`prlf`, `prlf:rounds=2`: a bundled model (msabench's own code), not a submission file."""
    return str(spec).split(":")[0] in bundled()


def _file(spec: str) -> tuple[Path, bytes]:
    """The submission file `spec` names and its bytes, checked without running any of it."""
    path = Path(spec)
    if not path.exists():
        hint = f"; bundled models: {', '.join(bundled())}" if path.suffix != ".py" else ""
        raise MsabenchError(f"submission {spec} is neither a file nor a bundled model{hint}")
    if not path.is_file() or path.suffix != ".py":
        raise MsabenchError(f"submission {spec} is not a Python file")
    path = path.resolve()
    try:
        source = path.read_bytes()
    except OSError as e:
        raise MsabenchError(f"submission {spec}: cannot read it: {e.strerror}") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        raise MsabenchError(f"{path}{f':{e.lineno}' if e.lineno else ''}: syntax error: {e.msg}") from None
    except ValueError as e:  # NUL bytes, on some Python versions
        raise MsabenchError(f"{path}: syntax error: {e}") from None
    return path, source


_PROBED: dict[tuple[str, str], Submission] = {}


def probe(spec: str | Path) -> Submission:
    """Like `load`, but a file is imported in the worker process: the caller runs none of its code.

    The result has the name and hash but no factory; `build` imports the file when called.
    """
    spec = str(spec)
    if is_bundled(spec):
        return load(spec)  # msabench's own code
    path, source = _file(spec)
    digest = hashlib.sha256(source).hexdigest()
    key = (str(path), digest)
    if key not in _PROBED:
        from msabench import isolation

        copy = isolation.stage(f"submission-{digest[:16]}.py", source)  # what a sandbox can see
        name = isolation.call(_name, (str(copy), str(path)), what=f"{path}: importing the submission", doing="import")
        if not isinstance(name, str) or not valid_name(name):  # what a worker says is checked, not trusted
            raise MsabenchError(f"{path}: the worker reported an unusable model name")
        _PROBED[key] = Submission(name=name, path=path, sha256=digest, factory=None)
    return _PROBED[key]


def _name(path: str, shown: str) -> str:
    return load(path, shown=Path(shown)).name


def load(spec: str | Path, shown: Path | None = None) -> Submission:
    """A submission by file path, or a bundled model by name with options (`prlf:rounds=2`).

    This imports and so runs the file in this process; drivers use `probe`. `shown`: the user's
    file when `spec` is a byte-identical copy of it: the module then runs as that file (its
    `__file__`, its tracebacks' line numbers) and messages name it.
    """
    spec = str(spec)
    models = bundled()
    base, raw_options = split_spec(spec) if spec.split(":")[0] in models else (spec, {})
    if base in models:
        path = models[base].resolve()
        source = path.read_bytes()
    else:
        path, source = _file(spec)
    digest = hashlib.sha256(source).hexdigest()
    where = shown or path
    module_name = f"msabench_submission_{digest[:16]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        if shown is None:
            module_spec.loader.exec_module(module)
        else:
            module.__file__ = str(shown)
            exec(compile(source, str(shown), "exec"), module.__dict__)  # noqa: S102 - the submission, as its own file
    except ModuleNotFoundError as e:
        sys.modules.pop(module_name, None)
        if base in models:
            raise NotInstalled.of(base, e) from None
        raise MsabenchError(f"{where}: importing the submission failed: {describe(e, Path(where))}") from None
    except (Exception, SystemExit) as e:
        sys.modules.pop(module_name, None)
        raise MsabenchError(f"{where}: importing the submission failed: {describe(e, Path(where))}") from None
    factory = _factory(module, where)
    name = base if base in models else _declared_name(module, where)
    options, code, version, display = None, "", None, ""
    if base in models:
        try:
            factory, name, digest, options, code, version = _bundled(module, base, raw_options, factory, source)
        except ModuleNotFoundError as e:  # the shared torch code, imported for its options
            raise NotInstalled.of(base, e) from None
        display = _display(module, base, raw_options)
    path = shown or path
    return Submission(name=name, path=path, sha256=digest, factory=factory,
                      options_cls=getattr(module, "OPTIONS", None) if base in models else None, options=options,
                      code_sha256=code, version=version, spec=spec if base in models else "", display=display)


def identity(base: str, version: int, options) -> str:
    """A bundled model's results key: name, declared version and options, not its source bytes, so a
    refactor stales nothing; a change meant to move its numbers bumps VERSION (as a protocol's).

    An option added later is declared `field(repr=False)`: at its default it leaves the key as it was
    (the runs made before it existed stay current), set to anything else it enters the key."""
    later = ""
    if dataclasses.is_dataclass(options):
        later = "".join(f"|{f.name}={getattr(options, f.name)!r}" for f in dataclasses.fields(options)
                        if not f.repr and getattr(options, f.name) != f.default)
    return hashlib.sha256(f"bundled:{base}|version={version}|{options!r}{later}".encode()).hexdigest()


def code_digest(module_file: Path, options) -> str:
    """What the bundled model's code is today: its file with the shared torch code, and its options.
    Recorded in manifests (code_sha256) so `msabench runs --check` can show drift."""
    from msabench import torch_baseline

    return hashlib.sha256(f"{torch_baseline.code_hash(module_file)}|{options!r}".encode()).hexdigest()


def _bundled(module, base: str, raw_options: dict, factory, source: bytes):
    """Bundled models: options checked now (not mid-run), and part of the name and the identity."""
    version = getattr(module, "VERSION", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MsabenchError(f"bundled model {base}: {module.__file__} must declare VERSION = <int >= 1>")
    options_cls = getattr(module, "OPTIONS", None)
    if raw_options and options_cls is None:
        raise MsabenchError(f"model {base} takes no options")
    if options_cls is None:
        return factory, base, identity(base, version, None), None, hashlib.sha256(source).hexdigest(), version
    from msabench.torch_baseline import parse_options

    options = (module.parse_options(raw_options, base) if callable(getattr(module, "parse_options", None))
               else parse_options(options_cls, raw_options, base))
    first = POSITIONAL.get(base)  # mmsa:lf_dnn is named mmsa-lf_dnn
    shown = ",".join(f"{k}={getattr(options, k)}" for k in sorted(raw_options) if k != first)
    head = f"{base}-{getattr(options, first)}" if first else base
    name = f"{head}[{shown}]" if shown else head
    return ((lambda info: module.build(info, options)), name, identity(base, version, options), options,
            code_digest(Path(module.__file__), options), version)


def _spec_of_name(name: str) -> str | None:
    """The spec a results name was made from, by its form alone (`prlf[amre=False]` -> `prlf:amre=False`,
    `mmsa-lf_dnn` -> `mmsa:lf_dnn`); None when no bundled model could make it."""
    m = re.fullmatch(r"([^\[\]]+)(?:\[(.*)\])?", name)
    if m is None:
        return None
    head, shown = m.group(1), m.group(2)
    if head in bundled():
        return head + (f":{shown}" if shown else "")
    base, _, first = head.partition("-")
    if base not in POSITIONAL or not first:
        return None
    return f"{base}:{first}" + (f",{shown}" if shown else "")


@lru_cache(maxsize=None)
def find_bundled(name: str) -> Submission | None:
    """The bundled model, loaded, whose results are stored under `name` (`prlf[amre=False]` is
    `prlf:amre=False`, `mmsa-lf_dnn` is `mmsa:lf_dnn`); None for a name no bundled model makes;
    NotInstalled when its packages are not. Cached: a bundled model's code does not change while
    the process runs."""
    spec = _spec_of_name(name)
    if spec is None:
        return None
    try:
        sub = load(spec)
    except NotInstalled:
        raise
    except MsabenchError:
        return None
    return sub if sub.name == name else None


def spec_of(name: str) -> str | None:
    """The bundled model spec a results name was made from; None for a name no bundled model makes."""
    sub = find_bundled(name)
    return None if sub is None else sub.spec


ENCODERS_SHOWN = {"minilm": "MiniLM", "bert": "BERT", "scratch": "scratch"}


def display_name(name: str) -> str:
    """A results name as a reader knows the model: the paper's name from its module's DISPLAY, MMSA's
    models marked as such, a pretrained text encoder after a "+", switched-off components after "w/o"
    (`prlf[amre=False]` -> "PRLF w/o amre", `mmsa-mult` -> "MulT (MMSA)"). A file submission keeps its name."""
    try:
        sub = find_bundled(name)
    except NotInstalled:  # read from its module's source, no import: no torch needed to show a board
        spec = _spec_of_name(name)
        base, raw = split_spec(spec)
        return _display(_declared_literals(bundled()[base]), base, raw)
    return name if sub is None else sub.display


def _declared_literals(path: Path) -> types.SimpleNamespace:
    """A module's top-level constants (DISPLAY, VERSION: literals) read from its source without running it."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return types.SimpleNamespace(**found)


def _display(module, base: str, raw: dict[str, str]) -> str:
    shown = getattr(module, "DISPLAY", base)
    first = POSITIONAL.get(base)
    if isinstance(shown, dict):  # one module, several models (mmsa:MODEL)
        shown = f"{shown.get(raw.get(first, ''), raw.get(first, base))} (MMSA)"
    extra = []
    for key, value in sorted(raw.items()):
        if key == first:
            continue
        if key == "text_encoder":
            extra.append(f"+ {ENCODERS_SHOWN.get(value, value)}")
        elif value in ("False", "off"):
            extra.append(f"w/o {key}")
        else:
            extra.append(f"[{key}={value}]")
    return " ".join([shown, *extra])


def _model_classes(module) -> list[type]:
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and callable(getattr(obj, "predict", None))]


NAME_RULE = "it names a folder: 1-100 characters, no / or \\, no control characters, not starting with '.'"


def _declared_name(module, path: Path) -> str:
    """Module NAME, else the model class's `name` class attribute, else the file name."""
    name, where = getattr(module, "NAME", None), "NAME"
    if name is None:
        named = {c.name: c for c in _model_classes(module) if isinstance(vars(c).get("name"), str)}
        if len(named) > 1:
            raise MsabenchError(f"{path}: model classes name themselves {', '.join(map(repr, sorted(named)))}; "
                                "set NAME at module level to say which name the results take")
        name, where = (next(iter(named)), f"{next(iter(named.values())).__name__}.name") if named else (path.stem, "")
    if not isinstance(name, str) or not valid_name(name):
        raise MsabenchError(f"{path}: {where or 'the file name'} {name!r} is not a usable model name ({NAME_RULE})")
    return name


def valid_name(name: str) -> bool:
    """Names become folder names and table rows: no separators, no hidden or parent folders."""
    return bool(re.fullmatch(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]{0,99}", name))


def _factory(module, path: Path) -> Callable[[DatasetInfo], Any]:
    build = getattr(module, "build", None)
    if callable(build):
        return build
    classes = _model_classes(module)
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

        return factory
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise MsabenchError(f"{path}: defines several model classes ({names}) and no build(info); add build(info)")
    raise MsabenchError(f"{path}: defines neither build(info) nor a model class with a predict(batch, mask) method")


LIMIT = 1e6  # |prediction| above this is no sentiment score (labels lie in [-3, 3]); metrics would overflow


def predictions(out: Any, n: int, where: str, ids: np.ndarray) -> np.ndarray:
    """Model output -> float64 [n]; real, finite, within +-LIMIT, the right shape; one line on failure."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out)
        if arr.dtype.kind == "c":
            raise MsabenchError(f"{where}: predict returned complex numbers ({arr.dtype}); a score is a real number")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
        arr = arr.astype(np.float64)
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
    big = np.abs(arr) > LIMIT
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise MsabenchError(f"{where}: predict returned {arr[i]:g} for sample {ids[i]}: a score beyond +-{LIMIT:g} "
                            f"({int(big.sum())} in the batch; labels lie in [-3, 3])")
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

    from msabench.torch_baseline import Options

    shared = {f.name for f in fields(Options)}
    switches = [f.name for f in fields(options_cls) if f.name not in shared and isinstance(f.default, bool) and f.default]
    prefix = ",".join(f"{k}={v}" for k, v in raw.items())
    return [f"{base}:{prefix + ',' if prefix else ''}{name}=off" for name in switches]
