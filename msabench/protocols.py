"""Missing-modality protocols: defined once in a TOML file, validated strictly, frozen, hashed.

A protocol says everything needed to corrupt an evaluation split reproducibly: which
dataset and split, which seeds, which conditions (missing rates or availability sets),
how dropped inputs are filled, whether the model is told, how masks are drawn and how
conditions are aggregated. Its fingerprint is a hash of the normalised content, so a
stored result can always be matched to the exact protocol that produced it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msabench import metrics, paths
from msabench.data import registry
from msabench.data.core import MODALITIES
from msabench.errors import MsabenchError



def shipped(folder: str, checkout: str | None = None) -> Path:
    """A folder the project ships (protocols, submissions, published): inside an installed package,
    else the checkout's (`checkout`, relative to the repository root; default: `folder`)."""
    package = Path(__file__).resolve().parent
    installed = package / "shipped" / folder
    return installed if installed.is_dir() else package.parent / (checkout or folder)


PROTOCOL_DIR = shipped("protocols")
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit
MAX_SEEDS = 100  # seeds a protocol's rule gives in all: those it lists, then the consecutive integers after them
KINDS = ("intra", "inter", "random-inter")
CONVENTIONS = ("hash", "mmsa")
FILLS = ("unk-zero",)
AGGREGATIONS = ("mean", "area")
INTER_SETS = ("T", "A", "V", "TA", "TV", "AV", "TAV")
DATASETS = {name: d.variant_names for name, d in registry.DATASETS.items()}  # the first is the default


def check_seed_values(seeds) -> None:
    """--seeds numpy can take: whole numbers in [0, 2^32)."""
    for s in seeds or ():
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT:
            raise MsabenchError(f"--seeds must be whole numbers in [0, 2^32) (0 to {SEED_LIMIT - 1}), got {s}")


def dataset_kind(dataset: str) -> str:
    return registry.kind(dataset)


@dataclass(frozen=True)
class Condition:
    """One evaluation condition: a per-modality drop rate (intra / random-inter) or an availability set (inter)."""

    name: str  # "r=0.3", "T=0.3,A=0,V=0", "TA", "p=0.5"; never contains "/"
    rates: tuple[float, float, float] = (0.0, 0.0, 0.0)  # T, A, V; intra and random-inter
    available: str = "TAV"  # inter: which modalities are present

    @property
    def level(self) -> float:
        """The x value for area-over-rates (max rate over modalities)."""
        return max(self.rates)


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    dataset: str
    variant: str
    split: str
    seeds: tuple[int, ...]
    kind: str
    conditions: tuple[Condition, ...]
    modalities: str  # modalities the corruption applies to (intra/random-inter)
    fill: str
    reveal_mask: bool
    mask_convention: str
    primary_metric: str
    aggregation: tuple[str, ...]
    description: str = ""
    mask_seeds: tuple[int, ...] = ()  # () = each training seed draws its own masks
    source: str = field(default="", compare=False, repr=False)  # the file it was read from; not part of it

    def mask_seed(self, seed: int) -> int:
        """The seed of the test masks a model trained with `seed` is evaluated on.

        LNLN's evaluation draws them once, with seed 1111, for all three trained checkpoints
        (`mask_seeds = [1111]`); a list as long as `seeds` pairs them one to one. A seed past the
        listed ones (`extended_seeds`) draws its own masks, or the one mask seed's; a paired list
        says nothing about it, so it has none.
        """
        if not self.mask_seeds:
            return seed
        if len(self.mask_seeds) == 1:
            return self.mask_seeds[0]
        if seed not in self.seeds:
            raise MsabenchError(f"protocol {self.name} pairs its mask seeds with the training seeds "
                                f"{list(self.seeds)}; seed {seed} has none ({self._where} says nothing about the "
                                "masks of other seeds)")
        return self.mask_seeds[self.seeds.index(seed)]

    @property
    def drops_text_tokens(self) -> bool:
        """Some condition drops single text tokens (not the whole modality): precomputed token features
        that carry context would keep the dropped words in their neighbours (`registry.text_in_context`)."""
        return self.kind == "intra" and any(c.rates[0] > 0 for c in self.conditions)

    @property
    def _where(self) -> str:
        return self.source or f"protocol {self.name}"

    @property
    def extension_problem(self) -> str | None:
        """Why this protocol's seeds cannot be extended past those it lists (naming its file), or None.

        The rule: consecutive integers after the last listed seed, when the listed seeds are
        consecutive (1111, 1112, 1113 -> 1114, 1115, ...), up to MAX_SEEDS seeds in all. A paired
        `mask_seeds` list gives no mask seed to a new training seed, so it refuses extension too.
        """
        seeds = self.seeds
        if any(b != a + 1 for a, b in zip(seeds, seeds[1:])):
            return (f"{self._where} lists seeds {list(seeds)} that are not consecutive integers, so no rule says "
                    "which seeds come after them")
        if len(self.mask_seeds) > 1:
            return (f"{self._where} pairs its mask_seeds {list(self.mask_seeds)} one to one with its seeds "
                    f"{list(seeds)} and says nothing about the masks of another seed")
        if len(seeds) >= MAX_SEEDS:
            return f"{self._where} lists {len(seeds)} seeds, and the rule gives at most {MAX_SEEDS} in all"
        if seeds[-1] + 1 >= SEED_LIMIT:
            return f"{self._where} lists seeds up to {seeds[-1]}, the largest seed there is (seeds are < 2^32)"
        return None

    @property
    def _last_extended(self) -> int:
        """The last seed of the extension (the rule holds; see `extension_problem`)."""
        return min(self.seeds[-1] + MAX_SEEDS - len(self.seeds), SEED_LIMIT - 1)

    def extended_seeds(self, n: int) -> tuple[int, ...]:
        """The first `n` seeds under the protocol's rule: a prefix of `seeds` when n <= len(seeds), else
        `seeds` and the consecutive integers after the last; one line when the rule gives no n seeds."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise MsabenchError(f"the number of seeds must be a whole number >= 1, got {n!r}")
        if n <= len(self.seeds):
            return self.seeds[:n]
        problem = self.extension_problem
        if problem is None and self.seeds[-1] + (n - len(self.seeds)) > self._last_extended:
            most = self._last_extended - self.seeds[-1] + len(self.seeds)
            why = f"at most {MAX_SEEDS} per protocol" if most == MAX_SEEDS else "seeds are < 2^32"
            problem = f"the rule gives {most} seeds in all, {self.seeds[0]}..{self._last_extended} ({why})"
        if problem is not None:
            raise MsabenchError(f"protocol {self.name} lists {len(self.seeds)} seed(s) and cannot give {n}: {problem}")
        last = self.seeds[-1]
        return self.seeds + tuple(range(last + 1, last + 1 + n - len(self.seeds)))

    def allows_seed(self, seed: int) -> bool:
        """True for a listed seed and for one of their extension under the rule (`extended_seeds`)."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            return False
        if seed in self.seeds:
            return True
        return self.extension_problem is None and self.seeds[-1] < seed <= self._last_extended

    def seed_rule(self) -> str:
        """The seeds this protocol takes, in words: "1111..1113, nor their extension 1114, 1115, ..., 1210 (...)"."""
        seeds = self.seeds
        consecutive = len(seeds) > 1 and all(b == a + 1 for a, b in zip(seeds, seeds[1:]))
        listed = f"{seeds[0]}..{seeds[-1]}" if consecutive else str(list(seeds))
        problem = self.extension_problem
        if problem is not None:
            return f"{listed}, which cannot be extended: {problem}"
        first, last = seeds[-1] + 1, self._last_extended
        shown = f"{first}, {first + 1}, ..., {last}" if last - first >= 3 else ", ".join(map(str, range(first, last + 1)))
        return (f"{listed}, nor their extension {shown} (consecutive integers after the last, "
                f"{last - seeds[-1] + len(seeds)} seeds in all)")

    @property
    def metric_kind(self) -> str:
        return dataset_kind(self.dataset)

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalised protocol; the description is not part of it."""
        body = asdict(self)
        body.pop("description")
        body.pop("source")  # where it was read from: the same protocol anywhere
        if not body["mask_seeds"]:
            body.pop("mask_seeds")  # protocols written before the field keep their fingerprints
        blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def condition(self, name: str) -> Condition:
        for c in self.conditions:
            if c.name == name:
                return c
        raise MsabenchError(f"protocol {self.name} has no condition {name!r}; it has {[c.name for c in self.conditions]}")


_TOP_KEYS = {
    "name": str, "version": int, "description": str, "dataset": str, "variant": str, "split": str,
    "seeds": list, "fill": str, "reveal_mask": bool, "mask_convention": str, "primary_metric": str,
    "aggregation": list, "missing": dict, "mask_seeds": list,
}
_MISSING_KEYS = {"kind": str, "modalities": list, "rates": list, "conditions": list, "sets": list}
_REQUIRED = ("name", "version", "dataset", "seeds", "missing", "primary_metric")


def _fmt(x: float) -> str:
    return f"{x:g}"


def parse(data: dict, where: str) -> Protocol:
    """Validate a protocol dict (as read from TOML) and freeze it. `where` names the file."""

    def fail(key: str, msg: str):
        raise MsabenchError(f"{where}: key '{key}': {msg}")

    for key, value in data.items():
        if key not in _TOP_KEYS:
            fail(key, f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
        want = _TOP_KEYS[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            fail(key, f"must be a {want.__name__}, got {type(value).__name__} {value!r}")
    for key in _REQUIRED:
        if key not in data:
            fail(key, "is required")

    name = data["name"]
    if not name or "/" in name or name.strip() != name:
        fail("name", "must be a non-empty name without '/' or surrounding spaces")
    if data["version"] < 1:
        fail("version", "must be >= 1")
    dataset = data["dataset"]
    if dataset not in DATASETS:
        fail("dataset", f"unknown dataset {dataset!r}; allowed: {', '.join(DATASETS)}")
    variant = data.get("variant", DATASETS[dataset][0])
    if variant not in DATASETS[dataset]:
        fail("variant", f"{variant!r} is not a variant of {dataset}; allowed: {', '.join(DATASETS[dataset])}")
    split = data.get("split", "test")
    if split not in ("test", "valid"):
        fail("split", f"must be 'test' or 'valid', got {split!r}")
    seeds = data["seeds"]
    if not seeds:
        fail("seeds", "must list at least one seed")
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in seeds):
        fail("seeds", f"must be integers in [0, 2^32), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        fail("seeds", f"has duplicates: {seeds!r}")
    mask_seeds = data.get("mask_seeds", [])
    if "mask_seeds" in data:
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in mask_seeds):
            fail("mask_seeds", f"must be integers in [0, 2^32), got {mask_seeds!r}")
        if len(mask_seeds) not in (1, len(seeds)):
            fail("mask_seeds", f"must give one mask seed for every training seed or as many as 'seeds' "
                               f"({len(seeds)}), got {len(mask_seeds)}")
        if data.get("missing", {}).get("kind") == "inter":
            fail("mask_seeds", "kind 'inter' draws no masks (its availability sets are fixed)")
    if mask_seeds == seeds:
        mask_seeds = []  # the default spelled out: the same protocol, the same fingerprint
    fill = data.get("fill", "unk-zero")
    if fill not in FILLS:
        fail("fill", f"{fill!r} is not allowed; allowed: {', '.join(FILLS)}")
    convention = data.get("mask_convention", "hash")
    if convention not in CONVENTIONS:
        fail("mask_convention", f"{convention!r} is not allowed; allowed: {', '.join(CONVENTIONS)}")
    metric_names = metrics.METRICS[dataset_kind(dataset)]
    primary = data["primary_metric"]
    if primary not in metric_names:
        fail("primary_metric", f"{primary!r} is not a {dataset} metric; allowed: {', '.join(metric_names)}")
    aggregation = data.get("aggregation", ["mean"])
    if not aggregation:
        fail("aggregation", f"must list at least one of {', '.join(AGGREGATIONS)}")
    for a in aggregation:
        if a not in AGGREGATIONS:
            fail("aggregation", f"{a!r} is not allowed; allowed: {', '.join(AGGREGATIONS)}")

    missing = data["missing"]
    for key, value in missing.items():
        if key not in _MISSING_KEYS:
            fail(f"missing.{key}", f"unknown key; allowed: {', '.join(sorted(_MISSING_KEYS))}")
        if not isinstance(value, _MISSING_KEYS[key]):
            fail(f"missing.{key}", f"must be a {_MISSING_KEYS[key].__name__}, got {value!r}")
    kind = missing.get("kind")
    if kind not in KINDS:
        fail("missing.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed_here = {"intra": {"kind", "modalities", "rates", "conditions"},
                    "inter": {"kind", "sets"},
                    "random-inter": {"kind", "rates"}}[kind]
    for key in missing:
        if key not in allowed_here:
            fail(f"missing.{key}", f"not allowed for kind {kind!r}; allowed: {', '.join(sorted(allowed_here))}")

    def rate(value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            fail(key, f"rates must be numbers in [0, 1], got {value!r}")
        return float(value)

    modalities = "TAV"
    conditions: list[Condition] = []
    if kind == "inter":
        sets = missing.get("sets", list(INTER_SETS))
        if not sets:
            fail("missing.sets", f"must list at least one availability set of {', '.join(INTER_SETS)}")
        for s in sets:
            if s not in INTER_SETS:
                fail("missing.sets", f"{s!r} is not an availability set; allowed: {', '.join(INTER_SETS)}")
            conditions.append(Condition(name=s, available=s))
    elif kind == "random-inter":
        rates = missing.get("rates")
        if not rates:
            fail("missing.rates", "must list at least one missing probability p in [0, 1)")
        for p in rates:
            p = rate(p, "missing.rates")
            if p >= 1.0:
                fail("missing.rates", f"p must be < 1 (at least one modality is kept), got {p!r}")
            conditions.append(Condition(name=f"p={_fmt(p)}", rates=(p, p, p)))
    else:
        mods = missing.get("modalities", list(MODALITIES))
        if not mods or any(m not in MODALITIES for m in mods) or len(set(mods)) != len(mods):
            fail("missing.modalities", f"must be a non-empty list of distinct {', '.join(MODALITIES)}, got {mods!r}")
        modalities = "".join(m for m in MODALITIES if m in mods)
        if ("rates" in missing) == ("conditions" in missing):
            fail("missing.rates", "give exactly one of 'rates' (same r for every modality) or 'conditions' (per-modality rates)")
        if "rates" in missing:
            if not missing["rates"]:
                fail("missing.rates", "must list at least one rate in [0, 1]")
            for r in missing["rates"]:
                r = rate(r, "missing.rates")
                conditions.append(Condition(
                    name=f"r={_fmt(r)}", rates=tuple(r if m in modalities else 0.0 for m in MODALITIES)))
        else:
            if not missing["conditions"]:
                fail("missing.conditions", "must list at least one {T = r, A = r, V = r} table")
            for c in missing["conditions"]:
                if not isinstance(c, dict) or not c or any(k not in modalities for k in c):
                    fail("missing.conditions", f"each entry is a table with keys among {', '.join(modalities)}, got {c!r}")
                rates = tuple(rate(c.get(m, 0.0), "missing.conditions") for m in MODALITIES)
                label = ",".join(f"{m}={_fmt(r)}" for m, r in zip(MODALITIES, rates) if m in modalities)
                conditions.append(Condition(name=label, rates=rates))
    names = [c.name for c in conditions]
    if len(set(names)) != len(names):
        fail("missing", f"conditions repeat: {names}")
    if "area" in aggregation and (kind == "inter" or len(conditions) < 2):
        fail("aggregation", "'area' needs at least two missing rates (not available for kind 'inter')")

    return Protocol(
        name=name, version=data["version"], dataset=dataset, variant=variant, split=split,
        seeds=tuple(seeds), kind=kind, conditions=tuple(conditions), modalities=modalities, fill=fill,
        reveal_mask=data.get("reveal_mask", False), mask_convention=convention, primary_metric=primary,
        aggregation=tuple(aggregation), description=data.get("description", ""), mask_seeds=tuple(mask_seeds),
        source=where,
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system: no such file either
        return False


def source(name_or_path: str | Path) -> Path:
    """The file `load(name_or_path)` reads: a shipped protocol's by name, else the path given."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and not _exists(path):
        known = PROTOCOL_DIR / f"{name_or_path}.toml"
        if "/" in str(name_or_path) or not _exists(known):
            raise MsabenchError(
                f"unknown protocol {str(name_or_path)!r}: neither a protocol file nor a shipped protocol "
                f"({', '.join(available())})")
        path = known
    return path


def load(name_or_path: str | Path) -> Protocol:
    """A shipped protocol by name (`mosi-intra`) or any protocol TOML file by path."""
    path = source(name_or_path)
    paths.input_file(path, "protocol file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return parse(data, str(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MsabenchError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:  # tables or arrays nested thousands deep: tomllib (or a repr of them) recurses
        raise MsabenchError(f"{path}: tables or arrays nested too deeply to read (a protocol nests only "
                            "[missing], its lists and their tables)") from None


def available() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))
