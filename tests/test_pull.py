"""msabench board pull / index: the committed runs, fetched from a folder or over real HTTP, kept only when
every file matches the sha256 index the package ships; the committed index matches the committed runs."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import ROOT
from msabench import pull, results
from msabench.errors import MsabenchError

RUNS = ROOT / "leaderboard" / "runs"


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_the_committed_index_is_the_committed_runs():
    assert pull.read_index(pull.default_index()) == pull.make_index(RUNS), \
        "leaderboard/index/runs.sha256 is stale: msabench board index (make leaderboard runs it)"


@pytest.fixture()
def small(tmp_path):
    """Two models of the board and their own index."""
    src = tmp_path / "src"
    for model in ("synth-intra/derl", "synth-intra/mean"):
        shutil.copytree(RUNS / model, src / model)
    index = pull.write_index(src, tmp_path / "runs.sha256")
    return src, index


def test_pull_from_a_folder_then_compare(tmp_path):
    out = tmp_path / "board"
    proc = cli("board", "pull", "--from", RUNS, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert pull.make_index(out) == pull.read_index(pull.default_index())
    proc = cli("compare", "derl", "prlf", "--protocol", "synth-intra", "--results", out, "--resamples", "300")
    assert proc.returncode == 0 and "derl vs prlf" in proc.stdout, proc.stderr


def test_a_changed_file_is_refused_and_nothing_is_written(small, tmp_path):
    src, index = small
    pred = src / "synth-intra" / "derl" / results.PACK
    pred.write_bytes(pred.read_bytes() + b"\0")
    out = tmp_path / "board"
    proc = cli("board", "pull", "--from", src, "--out", out, "--index", index)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "not the board's run" in proc.stderr, proc.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".board.")]
    with pytest.raises(MsabenchError, match="exists"):
        pull.pull(str(src), src, index)  # an existing --out is never written into


def test_pull_over_http(small, tmp_path):
    src, index = small
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = tmp_path / "board"
        assert pull.pull(url, out, index) == 2
        assert pull.make_index(out) == pull.read_index(index)
        with pytest.raises(MsabenchError, match="could not be fetched"):
            (src / "synth-intra" / "mean" / results.PACK).unlink()
            pull.pull(url, tmp_path / "again", index)
        assert not (tmp_path / "again").exists()
    finally:
        server.shutdown()


def test_an_out_that_cannot_be_made_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args in (["board", "pull", "--from", RUNS, "--out", blocker / "board"],
                 ["board", "index", "--runs", RUNS, "--out", blocker / "runs.sha256"]):
        proc = cli(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "is a file" in proc.stderr
    assert blocker.read_text() == "x"


def test_a_malformed_index_names_its_line(tmp_path):
    bad = tmp_path / "runs.sha256"
    bad.write_text("0" * 64 + "  ok/file\nnot a line\n")
    with pytest.raises(MsabenchError, match="line 2"):
        pull.read_index(bad)
    bad.write_text("0" * 64 + "  ../escape\n")
    with pytest.raises(MsabenchError, match="line 1"):
        pull.read_index(bad)
