"""Submissions that try to cheat: no score they get is better than their predictions earn.

Each cheat runs through the real command line, serially, under Ray and under --sandbox. For every
unit written, its score is recomputed here from its stored predictions and the data's own labels
(regenerated from the embedded synthetic set), and must equal what msabench reports, in the unit
and on the leaderboard; and no cheat may reach the test labels (a cheat that did would score
perfectly). What stays possible outside the sandbox, and is documented: opening the data the user
gave, or regenerating the embedded synthetic set, as the user could.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from msabench import data, metrics, protocols, results, sandbox

from conftest import ROOT

PROTOCOL = "synth-inter"

# Each reads the evaluation labels if it can find them anywhere, and predicts them; else zeros.
HEAD = """
import gc, os, sys
import numpy as np

def as_labels(obj):
    '''{id: label} of a labelled test split found in obj, if any.'''
    try:
        splits = getattr(obj, "splits", None)
        split = splits.get("test") if isinstance(splits, dict) else obj
        if type(split).__name__ == "Split" and getattr(split, "name", "") == "test" and split.labelled:
            return dict(zip(split.ids.tolist(), split.labels.tolist()))
    except Exception:
        pass
    return None

def answer(batch, found):
    return np.array([found.get(i, 0.0) for i in batch.ids.tolist()], dtype=np.float64)
"""

CHEATS = {
    # walks every object of its process for a labelled test split
    "gc_walk": HEAD + """
class M:
    def predict(self, batch, mask):
        for o in gc.get_objects():
            found = as_labels(o)
            if found:
                return answer(batch, found)
        return np.zeros(len(batch.ids))
""",
    # reads its callers' frames (the job's dataset, as `_run_job`'s locals once held it)
    "frame_walk": HEAD + """
class M:
    def predict(self, batch, mask):
        f = sys._getframe(1)
        while f is not None:
            for v in list(f.f_locals.values()):
                found = as_labels(v)
                if found:
                    return answer(batch, found)
            f = f.f_back
        return np.zeros(len(batch.ids))
""",
    # makes msabench's metrics perfect in its own process
    "metrics_patch": HEAD + """
import msabench.metrics as m
import msabench.runner as r
import msabench.results as res
def perfect(pred, label, kind="mosi"):
    return {k: (0.0 if k in ("MAE",) else 1.0) for k in m.METRICS[kind]}
m.compute = perfect
m.by_condition = lambda *a, **k: {"conditions": {}, "aggregate": {}}
r.condition_metrics = lambda *a, **k: {"conditions": {}, "aggregate": {}}
class M:
    def predict(self, batch, mask):
        return np.zeros(len(batch.ids))
""",
    # looks for labels in msabench's module state (the old worker kept the grid's dataset there)
    "internals": HEAD + """
class M:
    def predict(self, batch, mask):
        for name, mod in list(sys.modules.items()):
            if name.startswith("msabench"):
                for v in list(vars(mod).values()):
                    for cand in (v.values() if isinstance(v, dict) else [v]):
                        found = as_labels(cand)
                        if found:
                            return answer(batch, found)
        return np.zeros(len(batch.ids))
""",
    # writes a perfect metrics.json and a forged unit with all-zero labels into the results folder
    "writes_out": HEAD + """
import json, pathlib
class M:
    def predict(self, batch, mask):
        out = pathlib.Path(os.environ.get("CHEAT_OUT", "/nonexistent"))
        try:
            for f in out.glob("*/*/seed-*/metrics.json"):
                doc = json.loads(f.read_text())
                for cond in doc["conditions"].values():
                    cond.update(MAE=0.0, Non0_acc_2=1.0)
                f.write_text(json.dumps(doc))
        except OSError:
            pass
        return np.zeros(len(batch.ids))
""",
    # claims test-split selection, which would hand it the labelled test split in fit
    "selects_on_test": HEAD + """
class M:
    selects_on_test = True
    def fit(self, train, valid, seed, test=None):
        self.found = as_labels(test) or {}
    def predict(self, batch, mask):
        return answer(batch, self.found)
""",
}
NOT_RUN = {"selects_on_test"}  # refused, one line; the grid goes on


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, env={**os.environ, "MSABENCH_DATA": "", **(env or {})})


@pytest.fixture(scope="module")
def cheats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cheats")
    files = []
    for name, text in CHEATS.items():
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        files.append(path)
    return folder, files


@pytest.fixture(scope="module")
def truth():
    ds = data.load("synth-mosi", "aligned_50")
    test = ds["test"]
    return dict(zip(test.ids.tolist(), test.labels.astype(np.float64).tolist()))


def earned(unit: results.UnitResult, truth: dict) -> dict:
    """The score the unit's predictions earn against the data's own labels, computed here."""
    labels = np.array([truth[i] for i in unit.ids.tolist()])
    p = protocols.load(PROTOCOL)
    return metrics.by_condition(unit.predictions, labels, unit.conditions, [(c.name, c.level) for c in p.conditions],
                                p.metric_kind, p.aggregation)


def check_grid(out, proc, truth, perfect_allowed=()):
    assert proc.returncode == 1, proc.stderr  # the refused cheat fails its job; the rest are written
    failed = [line for line in proc.stderr.splitlines() if line.startswith("msabench: error:")]
    assert len(failed) == 1 and "selects_on_test = True" in failed[0] and "reserved for bundled models" in failed[0]
    assert "Traceback" not in proc.stderr
    scored = {}
    for folder in results.find_units(out, PROTOCOL):
        unit = results.read_unit(folder)
        mine = earned(unit, truth)
        np.testing.assert_equal(unit.metrics, mine)  # what msabench reports is what the predictions earn
        stored = json.loads((folder / "metrics.json").read_text())
        assert stored["aggregate"]["mean"]["MAE"] == pytest.approx(mine["aggregate"]["mean"]["MAE"])
        scored[unit.model] = mine["aggregate"]["mean"]
    assert set(scored) == set(CHEATS) - NOT_RUN
    for model, score in scored.items():
        if model not in perfect_allowed:
            assert score["MAE"] > 0.5 and score["Non0_acc_2"] < 0.9, (model, score)  # no labels were reached
    # the leaderboard recomputes the same numbers (metrics.json edited by writes_out is not read)
    board = out.parent / f"{out.name}-board"
    proc = cli("leaderboard", "--results", out, "--out", board, "--no-figures", "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((board / "results.json").read_text())["results"]
    for row in rows:
        if row["condition"] == "<mean>":
            assert row["MAE"] == pytest.approx(scored[row["model"]]["MAE"], abs=1e-12)
    return scored


def run_grid(out, files, *extra):
    return cli("run", "--protocol", PROTOCOL, "--seeds", "1111", "--out", out, "--model", *files, *extra,
               env={"CHEAT_OUT": str(out)})


def test_cheats_serial(cheats, truth):
    folder, files = cheats
    out = folder / "serial"
    scored = check_grid(out, run_grid(out, files), truth)
    assert scored["metrics_patch"]["MAE"] == pytest.approx(scored["gc_walk"]["MAE"])  # all-zero predictions


def test_cheats_ray(cheats, truth):
    pytest.importorskip("ray")
    folder, files = cheats
    out = folder / "ray"
    check_grid(out, run_grid(out, files, "--executor", "ray", "--cpus-per-job", "1"), truth)


@pytest.mark.skipif(sandbox.unavailable() is not None, reason=f"no sandbox here: {sandbox.unavailable()}")
def test_cheats_sandbox(cheats, truth, tmp_path):
    """In the sandbox even the synthetic generator and the results folder are out of reach."""
    folder, files = cheats
    regen = folder / "regenerates.py"
    regen.write_text(textwrap.dedent("""
        import numpy as np
        class M:
            def predict(self, batch, mask):
                try:
                    from msabench import data
                    test = data.load("synth-mosi", "aligned_50")["test"]
                    found = dict(zip(test.ids.tolist(), test.labels.tolist()))
                except Exception:
                    found = {}
                return np.array([found.get(i, 0.0) for i in batch.ids.tolist()])
    """))
    out = folder / "sandbox"
    proc = run_grid(out, [*files, regen], "--sandbox")
    CHEATS_WITH = dict(CHEATS, regenerates="")
    assert proc.returncode == 1, proc.stderr
    for f in results.find_units(out, PROTOCOL):
        unit = results.read_unit(f)
        np.testing.assert_equal(unit.metrics, earned(unit, truth))
        assert unit.metrics["aggregate"]["mean"]["MAE"] > 0.5, unit.model
    assert {f.parent.name for f in results.find_units(out, PROTOCOL)} == set(CHEATS_WITH) - NOT_RUN
    # outside the sandbox, the same file regenerates the embedded data (as the user could): documented
    out2 = tmp_path / "plain"
    proc = cli("run", "--protocol", PROTOCOL, "--seeds", "1111", "--out", out2, "--model", regen)
    assert proc.returncode == 0, proc.stderr
    unit = results.read_unit(results.find_units(out2, PROTOCOL)[0])
    assert unit.metrics["aggregate"]["mean"]["MAE"] == 0.0


@pytest.mark.skipif(sandbox.unavailable() is not None, reason=f"no sandbox here: {sandbox.unavailable()}")
def test_sandbox_sees_no_network_home_or_data(tmp_path):
    """What a sandboxed worker can open: no data file, no home, no project folder, no network, none of the
    user's environment variables."""
    secret = tmp_path / "data.pkl"
    secret.write_text("labels")
    probe = tmp_path / "probe.py"
    home = [str(p) for p in Path.home().iterdir()  # what the home holds, but the way to the Python prefix
            if not any(os.path.realpath(x).startswith(str(p)) for x in (sys.prefix, sys.base_prefix))]
    probe.write_text(textwrap.dedent(f"""
        import os, socket
        import numpy as np
        SEEN = []
        for path in [{str(secret)!r}, {str(ROOT / "leaderboard")!r}, {str(ROOT / "README.md")!r}, *{home!r}]:
            if os.path.exists(path):
                SEEN.append(path)
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=2).close()
            SEEN.append("network")
        except OSError:
            pass
        if b"s3cret" in open("/proc/self/environ", "rb").read() or os.environ.get("MY_TOKEN"):
            SEEN.append("the user's environment")
        if SEEN:
            raise RuntimeError("sandbox leaks: " + ", ".join(SEEN))
        class M:
            def predict(self, batch, mask):
                return np.zeros(len(batch.ids))
    """))
    proc = cli("run", "--protocol", PROTOCOL, "--seeds", "1111", "--out", tmp_path / "out", "--model", probe,
               "--sandbox", env={"MY_TOKEN": "s3cret"})
    assert proc.returncode == 0, proc.stderr
    # the same file outside the sandbox sees them (so the check above can fail)
    proc = cli("run", "--protocol", PROTOCOL, "--seeds", "1111", "--out", tmp_path / "out2", "--model", probe,
               env={"MY_TOKEN": "s3cret"})
    assert proc.returncode == 2 and "sandbox leaks" in proc.stderr and str(secret) in proc.stderr
    assert "the user's environment" in proc.stderr


def test_a_forged_reply_runs_no_code_in_the_host(tmp_path):
    """A worker that writes its own bytes on the pipe (a pickle that would run code) is stopped, and
    nothing it sent is executed: replies are decoded as plain data only."""
    marker = tmp_path / "pwned"
    forger = tmp_path / "forger.py"
    forger.write_text(textwrap.dedent(f"""
        import os, pickle, struct, sys
        from multiprocessing.connection import Connection
        import numpy as np

        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        class M:
            def predict(self, batch, mask):
                Connection(int(sys.argv[1])).send_bytes(pickle.dumps(("ok", Payload(), False)))
                return np.zeros(len(batch.ids))
    """))
    proc = cli("run", "--protocol", PROTOCOL, "--seeds", "1111", "--out", tmp_path / "out", "--model", forger)
    assert proc.returncode == 1 and "malformed reply" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "out" / PROTOCOL / "forger").exists()
