"""More seeds than a protocol lists: its seeds extended by its rule (consecutive integers after the last)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from msabench import executors, masking, protocols
from msabench.data import load as load_data
from msabench.errors import MsabenchError

from conftest import ROOT, small_dataset, write_file

SYNTH = (ROOT / "protocols" / "synth-intra.toml").read_text()


def msabench(*args):
    return subprocess.run([sys.executable, "-m", "msabench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ), timeout=600)


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("msabench: error: "), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def variant(tmp_path, name, seeds="[1111, 1112, 1113]", extra=""):
    """synth-intra as a protocol file of its own, with other seeds and mask seeds."""
    text = SYNTH.replace('name = "synth-intra"', f'name = "{name}"').replace("seeds = [1111, 1112, 1113]",
                                                                             f"seeds = {seeds}\n{extra}")
    return write_file(tmp_path / f"{name}.toml", text)


def manifests(out, protocol, model="mean"):
    folder = out / protocol / model
    return {int(d.name.removeprefix("seed-")): json.loads((d / "manifest.json").read_text())
            for d in sorted(folder.iterdir()) if d.name.startswith("seed-")}


# ------------------------------------------------------------------ the rule, on Protocol


def test_the_rule_extends_consecutive_seeds():
    p = protocols.load("synth-intra")
    before = p.fingerprint
    assert p.extended_seeds(2) == (1111, 1112) and p.extended_seeds(3) == p.seeds
    assert p.extended_seeds(5) == (1111, 1112, 1113, 1114, 1115)
    assert p.extended_seeds(protocols.MAX_SEEDS)[-1] == 1111 + protocols.MAX_SEEDS - 1
    assert all(map(p.allows_seed, (1111, 1113, 1114, 1115, 1111 + protocols.MAX_SEEDS - 1)))
    assert not any(map(p.allows_seed, (1110, 0, 2000, 1111 + protocols.MAX_SEEDS, True, 1114.0)))
    assert [p.mask_seed(s) for s in p.extended_seeds(5)] == [1111, 1112, 1113, 1114, 1115]
    assert p.fingerprint == before  # extension is a property of a run, not of the protocol
    for bad in (0, -1, True, 2.0):
        with pytest.raises(MsabenchError, match="whole number >= 1"):
            p.extended_seeds(bad)
    with pytest.raises(MsabenchError, match=f"cannot give {protocols.MAX_SEEDS + 1}: the rule gives "
                                            f"{protocols.MAX_SEEDS} seeds in all"):
        p.extended_seeds(protocols.MAX_SEEDS + 1)
    assert p.seed_rule() == ("1111..1113, nor their extension 1114, 1115, ..., 1210 (consecutive integers after "
                             "the last, 100 seeds in all)")


def test_one_mask_seed_serves_the_extra_seeds_too():
    fixed = protocols.load("mosi-intra")  # LNLN: mask seed 1111 for every training seed
    assert fixed.extended_seeds(4)[-1] == 1114 and fixed.allows_seed(1114)
    assert fixed.mask_seed(1114) == 1111 and fixed.mask_seed(1200) == 1111


def test_the_fingerprint_does_not_depend_on_where_the_file_is(tmp_path):
    copy = write_file(tmp_path / "elsewhere" / "synth-intra.toml", SYNTH)
    shipped, moved = protocols.load("synth-intra"), protocols.load(copy)
    assert moved.source == str(copy) and shipped.source != moved.source
    assert moved.fingerprint == shipped.fingerprint and moved == shipped


def test_paired_mask_seeds_refuse_extension(tmp_path):
    path = variant(tmp_path, "paired", extra="mask_seeds = [7, 8, 9]")
    p = protocols.load(path)
    assert p.extended_seeds(3) == p.seeds and p.extended_seeds(2) == (1111, 1112)  # prefixes still work
    assert not p.allows_seed(1114) and p.allows_seed(1112)
    with pytest.raises(MsabenchError) as e:
        p.extended_seeds(4)
    line = str(e.value)
    assert "\n" not in line and str(path) in line and "pairs its mask_seeds [7, 8, 9] one to one" in line
    with pytest.raises(MsabenchError, match="seed 1114 has none"):
        p.mask_seed(1114)


def test_seeds_that_are_not_consecutive_have_no_rule(tmp_path):
    path = variant(tmp_path, "gappy", seeds="[1111, 1113, 1115]")
    p = protocols.load(path)
    assert p.extended_seeds(2) == (1111, 1113) and not p.allows_seed(1116) and not p.allows_seed(1112)
    with pytest.raises(MsabenchError) as e:
        p.extended_seeds(4)
    line = str(e.value)
    assert "\n" not in line and str(path) in line and "not consecutive integers" in line


def test_notebook_run_takes_n_seeds(tmp_path):
    p = protocols.parse({"name": "t-intra", "version": 1, "dataset": "synth-mosi", "seeds": [1, 2],
                         "primary_metric": "Non0_acc_2", "missing": {"kind": "intra", "rates": [0.0, 0.5]}}, "test")
    data = small_dataset()
    rep = executors.run(p, "mean", out=tmp_path, dataset=data, n_seeds=3)
    assert [u.seed for u in rep.units] == [1, 2, 3] and rep.skipped == []
    again = executors.run(p, "mean", out=tmp_path, dataset=data, n_seeds=3)
    assert again.skipped == [1, 2, 3]
    with pytest.raises(MsabenchError, match="give one of them"):
        executors.run(p, "mean", out=tmp_path, dataset=data, seeds=[1], n_seeds=3)


# ------------------------------------------------------------------ the command line, real runs


def test_n_seeds_runs_the_extension(tmp_path):
    out, three = tmp_path / "four", tmp_path / "three"
    proc = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--n-seeds", "4", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "seeds 1111, 1112, 1113, 1114" in proc.stdout
    base = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--out", three)
    assert base.returncode == 0, base.stderr

    got, listed = manifests(out, "synth-intra"), manifests(three, "synth-intra")
    assert sorted(got) == [1111, 1112, 1113, 1114] and sorted(listed) == [1111, 1112, 1113]
    fingerprint = protocols.load("synth-intra").fingerprint
    assert {m["protocol_fingerprint"] for m in [*got.values(), *listed.values()]} == {fingerprint}
    assert all(m["seed"] == s and m["mask_seed"] == s for s, m in got.items())
    # the listed seeds' units are those of the 3-seed run; seed 1114 draws masks of its own
    assert all(got[s]["masks_fingerprint"] == listed[s]["masks_fingerprint"] for s in listed)
    assert len({m["masks_fingerprint"] for m in got.values()}) == 4
    p = protocols.load("synth-intra")
    test = load_data(p.dataset, p.variant)["test"]
    m13, m14 = masking.observed(p, test, 1113)["r=0.5"], masking.observed(p, test, 1114)["r=0.5"]
    assert not np.array_equal(m13.text, m14.text) and not np.array_equal(m13.audio, m14.audio)
    assert got[1114]["masks_fingerprint"] == masking.fingerprint(p, test, 1114)

    # a re-run with the same seeds does nothing new; one more seed runs that seed only
    again = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--n-seeds", "4", "--out", out)
    assert again.returncode == 0 and "re-used 4 finished result(s)" in again.stderr, again.stderr
    assert manifests(out, "synth-intra") == got
    listed_again = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--seeds", "1114", "1111",
                            "--out", out)
    assert "re-used 2 finished result(s)" in listed_again.stderr and manifests(out, "synth-intra") == got
    five = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--n-seeds", "5", "--out", out)
    assert five.returncode == 0 and "re-used 4 finished result(s)" in five.stderr, five.stderr
    now = manifests(out, "synth-intra")
    assert sorted(now) == [1111, 1112, 1113, 1114, 1115] and all(now[s] == got[s] for s in got)


def test_one_mask_seed_for_the_extra_seeds_on_the_command_line(tmp_path):
    path = variant(tmp_path, "fixed-masks", extra="mask_seeds = [1111]")
    proc = msabench("run", "--protocol", path, "--model", "mean", "--n-seeds", "4", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    got = manifests(tmp_path / "o", "fixed-masks")
    assert sorted(got) == [1111, 1112, 1113, 1114] and {m["mask_seed"] for m in got.values()} == {1111}
    assert len({m["masks_fingerprint"] for m in got.values()}) == 1


def test_seeds_may_name_extra_seeds(tmp_path):
    proc = msabench("run", "--protocol", "synth-intra", "--model", "mean", "--seeds", "1111", "1114",
                    "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(manifests(tmp_path, "synth-intra")) == [1111, 1114]


def test_seeds_outside_the_rule_are_refused(tmp_path):
    out = tmp_path / "out"
    line = one_line_error(msabench("run", "--protocol", "synth-intra", "--model", "mean", "--seeds", "1111", "2000",
                                   "--out", out),
                          "seed 2000 is not one of the seeds of synth-intra, 1111..1113, nor their extension "
                          "1114, 1115, ..., 1210 (consecutive integers after the last")
    assert "seed 1111 " not in line and line.endswith("100 seeds in all)")
    assert not out.exists()


def test_seeds_and_n_seeds_together_are_refused(tmp_path):
    out = tmp_path / "out"
    one_line_error(msabench("run", "--protocol", "synth-intra", "--model", "mean", "--seeds", "1111", "--n-seeds",
                            "4", "--out", out), "--seeds 1111 and --n-seeds 4: give one of them")
    one_line_error(msabench("run", "--protocol", "synth-intra", "--model", "mean", "--n-seeds", "0", "--out", out),
                   "--n-seeds must be a whole number >= 1, got 0")
    assert not out.exists()


def test_extension_refused_for_paired_and_gappy_protocols(tmp_path):
    out = tmp_path / "out"
    paired = variant(tmp_path, "paired", extra="mask_seeds = [7, 8, 9]")
    gappy = variant(tmp_path, "gappy", seeds="[1111, 1113, 1115]")
    one_line_error(msabench("run", "--protocol", paired, "--model", "mean", "--n-seeds", "4", "--out", out),
                   str(paired), "pairs its mask_seeds [7, 8, 9] one to one", "cannot give 4")
    one_line_error(msabench("run", "--protocol", paired, "--model", "mean", "--seeds", "1111", "1114", "--out", out),
                   "seed 1114 is not one of the seeds of paired, 1111..1113, which cannot be extended", str(paired))
    one_line_error(msabench("run", "--protocol", gappy, "--model", "mean", "--n-seeds", "4", "--out", out),
                   str(gappy), "not consecutive integers", "cannot give 4")
    one_line_error(msabench("run", "--protocol", "synth-intra", gappy, "--model", "mean", "--n-seeds", "4",
                            "--out", out), str(gappy))
    assert not out.exists()
    # a prefix is no extension: the first 2 of the paired protocol run with their own mask seeds
    proc = msabench("run", "--protocol", paired, "--model", "mean", "--n-seeds", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr
    got = manifests(out, "paired")
    assert sorted(got) == [1111, 1112] and [got[s]["mask_seed"] for s in (1111, 1112)] == [7, 8]


def test_a_seed_only_some_protocols_take_runs_under_those(tmp_path):
    gappy = variant(tmp_path, "gappy", seeds="[1111, 1113, 1115]")
    proc = msabench("run", "--protocol", "synth-intra", gappy, "--model", "mean", "--seeds", "1114", "--out",
                    tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "note: protocol gappy does not take seed(s) 1114" in proc.stderr and str(gappy) in proc.stderr
    assert sorted(manifests(tmp_path / "out", "synth-intra")) == [1114]
    assert not (tmp_path / "out" / "gappy").exists()
