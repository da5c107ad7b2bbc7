"""Shared fixtures: small generated datasets in the exact MMSA formats, and helpers to write files."""

import pickle
import textwrap
from pathlib import Path

import pytest

from msabench.data import mmsa, synth

ROOT = Path(__file__).resolve().parent.parent

# The modules that take minutes (measured in CI: test_baselines_quality about 650 s, test_real_mosi about
# 520 s, test_mmsa_models and test_docs about 300 s each) run first: `make test` hands whole modules to its
# workers in collection order (--dist loadscope), and one of these started last kept one worker busy for
# minutes after the other had finished
LONG_MODULES = ("test_baselines_quality.py", "test_real_mosi.py", "test_mmsa_models.py", "test_docs.py")


def pytest_collection_modifyitems(items):
    first = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: first.get(item.path.name, len(LONG_MODULES)))  # stable: the rest keep their order


@pytest.fixture(autouse=True, scope="session")
def _checkpoint_cache(tmp_path_factory):
    """Checkpoints trained by tests go to a temporary folder, never the user's cache."""
    import os

    old = os.environ.get("MSABENCH_CACHE")
    os.environ["MSABENCH_CACHE"] = str(tmp_path_factory.mktemp("msabench-cache"))
    yield
    if old is None:
        os.environ.pop("MSABENCH_CACHE", None)
    else:
        os.environ["MSABENCH_CACHE"] = old


@pytest.fixture(autouse=True, scope="session")
def _share_the_cores():
    """Under pytest-xdist, each worker's torch takes its share of the cores, not all of them.

    Oversubscribed OpenMP threads spin against each other and slow every worker down."""
    import os

    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield


def small_raw(seed=0, sizes=(80, 30, 40), **kw):
    return synth.make_raw(seed=seed, sizes=sizes, **kw)


def small_dataset(seed=0, sizes=(80, 30, 40), name="synth-mosi", variant="aligned_50", **kw):
    return mmsa.from_dict(small_raw(seed, sizes, **kw), name, variant, f"generated:test seed={seed}")


def intra_protocol(rates=(0.0, 0.5), seed=1):
    """A small token/frame-drop protocol on synth-mosi (same r for T, A and V), for the model tests."""
    from msabench import protocols

    return protocols.parse({"name": "t-intra", "version": 1, "dataset": "synth-mosi", "seeds": [seed],
                            "primary_metric": "Non0_acc_2", "missing": {"kind": "intra", "rates": list(rates)}},
                           "test")


def inter_protocol(seed=1):
    """The seven modality sets on synth-mosi, for the model tests."""
    from msabench import protocols

    return protocols.parse({"name": "t-inter", "version": 1, "dataset": "synth-mosi", "seeds": [seed],
                            "primary_metric": "Non0_acc_2", "aggregation": ["mean"],
                            "missing": {"kind": "inter", "sets": ["T", "A", "V", "TA", "TV", "AV", "TAV"]}}, "test")


@pytest.fixture
def dataset():
    return small_dataset()


@pytest.fixture
def unaligned():
    return small_dataset(seed=3, aligned=False, audio_len=30, vision_len=40, name="mosi", variant="unaligned_50")


def write_pickle(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def write_file(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def verify_rows(out: str) -> list[dict]:
    """The rows of `msabench verify`'s default output: each table row's cells by header (the measured
    difference and its CI apart, as in the --wide table), and under "line" the row's `#N ...` line
    beneath the table (the claim as written, the claimed value in paper units, where it was checked
    from, the note, the full verdict where the table shortened it)."""
    lines = out.splitlines()
    table = [x for x in lines if x.startswith("|")]
    headers = [c.strip() for c in table[0].strip("|").split("|")]
    rows = []
    for x in table[2:]:
        cells = dict(zip(headers, (c.strip() for c in x.strip("|").split("|"))))
        cells["measured"], _, ci = cells.pop("measured [CI] (Holm level)").partition(" ")
        cells["CI (Holm level)"] = ci or "-"  # no CI where no test was made (published means without SDs)
        cells["line"] = next(y for y in lines if y.startswith(f"#{cells['#']} "))
        rows.append(cells)
    return rows


# The shapes in the authors' LNLN and ALMT configurations (configs/*.yaml): text length, (audio length, dim),
# (vision length, dim) of MMSA's unaligned files, for the parameter-count tests
AUTHORS_SHAPES = {"mosi": (50, (375, 5), (500, 20)), "mosei": (50, (500, 74), (500, 35)),
                  "sims": (39, (400, 33), (55, 709))}


def authors_info(name):
    """A DatasetInfo in the shapes of the authors' configuration for `name`, with 768-d text features."""
    from msabench.data.core import DatasetInfo

    text_len, audio, vision = AUTHORS_SHAPES[name]
    return DatasetInfo(name=name, variant="unaligned_50", kind="mosi", text_len=text_len, audio_len=audio[0],
                       audio_dim=audio[1], vision_len=vision[0], vision_dim=vision[1], has_text_ids=False,
                       text_feature_dim=768, label_range=(-3.0, 3.0))
