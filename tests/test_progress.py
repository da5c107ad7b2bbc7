"""The terminal while a grid runs (a real pseudo-terminal, 100 columns): one bar for the jobs, what the
current job does beside it, log lines and one summary per finished job printed above it, unbroken."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from conftest import ROOT, write_file

SLOW_FIT = """
import sys
import numpy as np

class M:
    def fit(self, train, valid, seed):
        for epoch in range(3):
            print(f"my epoch {epoch + 1}/3 done", file=sys.stderr, flush=True)  # a worker's log line

    def predict(self, batch, mask):
        return np.zeros(len(batch.ids))

def build(info):
    return M()
"""


def run_in_terminal(args, cwd) -> str:
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "msabench", *map(str, args)], cwd=cwd, stdin=side, stdout=side,
                            stderr=side, close_fds=True)
    os.close(side)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed: every process on it has exited
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


def test_bar_status_logs_and_summaries(tmp_path):
    sub = write_file(tmp_path / "slowfit.py", SLOW_FIT)
    text = run_in_terminal(["run", "--protocol", "synth-intra", "--model", "mean", sub, "--seeds", "1111",
                            "--out", tmp_path / "res"], ROOT)
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    bars = [ln for ln in lines if ln.startswith("grid:")]
    assert bars and re.search(r"grid: 100%.*2/2", bars[-1]), bars[-3:]
    assert any("predict synth-intra r=0.5 (6/10)" in b for b in bars)  # what the current job is doing
    for n in (1, 2, 3):  # the worker's stderr comes through whole, on lines of its own
        assert f"my epoch {n}/3 done" in lines
    done = [ln for ln in lines if ln.startswith("done:")]
    assert len(done) == 2 and any(d.startswith("done: slowfit seed 1111 on synth-intra: Non0_acc_2 ") for d in done)
    assert all(len(b) <= 100 for b in bars)
    tables = [ln for ln in lines if ln.startswith("|")]
    assert tables and max(map(len, tables)) <= 100  # the result tables fit the terminal
    assert "--wide shows every metric" in text
