import os

import numpy as np
import pytest

from msabench.data import expected_path, load, mmsa
from msabench.errors import MsabenchError

from conftest import small_raw, write_pickle


def test_pickle_round_trip_matches_in_memory(tmp_path):
    raw = small_raw(aligned=False, audio_len=30, vision_len=40)
    path = write_pickle(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl", raw)
    ds = load("mosi", "unaligned_50", data_dir=tmp_path)
    direct = mmsa.from_dict(raw, "mosi", "unaligned_50", str(path))
    assert ds.fingerprint == direct.fingerprint
    test = ds["test"]
    assert np.array_equal(test.text_ids, raw["test"]["text_bert"][:, 0].astype(np.int64))
    assert np.array_equal(test.audio_lengths, np.asarray(raw["test"]["audio_lengths"]))
    assert test.ids.tolist() == list(raw["test"]["id"])
    assert ds.kind == "mosi" and ds.info.audio_len == 30 and ds.info.vision_len == 40


def test_env_var_layout(tmp_path, monkeypatch):
    write_pickle(expected_path(tmp_path, "mosi", "aligned_50"), small_raw())
    monkeypatch.setenv("MSABENCH_DATA", str(tmp_path))
    assert len(load("mosi", "aligned_50")["train"]) == 80


def test_aligned_lengths_follow_text(dataset):
    s = dataset["train"]
    assert np.array_equal(s.audio_lengths, s.text_lengths)


def test_nonfinite_features_are_zeroed_and_counted(tmp_path):
    raw = small_raw()
    raw["train"]["audio"][0, 0, :2] = -np.inf
    raw["test"]["vision"][1, 1, 0] = np.nan
    ds = mmsa.from_dict(raw, "mosi", "aligned_50", "x")
    assert ds.nonfinite_replaced == 3
    assert np.all(np.isfinite(ds["train"].audio)) and ds["train"].audio[0, 0, 0] == 0


def test_sims_extra_labels_and_features_only():
    raw = small_raw(aligned=False, audio_len=30, vision_len=40)  # SIMS files are unaligned
    for part in raw.values():
        n = len(part["regression_labels"])
        part["regression_labels"] = np.clip(part["regression_labels"] / 3, -1, 1)
        for m in "TAV":
            part[f"regression_labels_{m}"] = part["regression_labels"].copy()
        part["text"] = np.random.default_rng(0).normal(size=(n, 50, 8)).astype(np.float32)
        part["text"][part["text_bert"][:, 1] == 0] = 0
        del part["text_bert"]
    ds = mmsa.from_dict(raw, "sims", "unaligned_39", "x")
    assert ds.kind == "sims" and ds.info.text_feature_dim == 8 and not ds.info.has_text_ids
    assert set(ds["test"].extra_labels) == {"T", "A", "V"}
    assert ds["test"].text_mask.sum() > 0


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/msabench-pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = "/tmp/msabench-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    raw = small_raw()
    raw["train"]["id"] = Boom()
    path = write_pickle(tmp_path / "evil.pkl", raw)
    with pytest.raises(MsabenchError, match="refusing to load.*(posix|os)\\.system"):
        mmsa.load(path, "mosi", "aligned_50")
    assert not os.path.exists(marker)


def test_truncated_pickle(tmp_path):
    path = write_pickle(tmp_path / "t.pkl", small_raw())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MsabenchError, match="truncated or corrupt"):
        mmsa.load(path, "mosi", "aligned_50")


# Opcodes whose length field makes the C unpickler overflow or try a huge allocation,
# which once escaped as a traceback (CI, random garbage bytes).
CRAFTED = {
    "BINUNICODE8 longer than the address space": b"\x80\x04\x8d" + (2**63 + 5).to_bytes(8, "little"),
    "BINBYTES8 of 2**62 bytes": b"\x80\x04\x8e" + (2**62).to_bytes(8, "little"),
    "BINUNICODE of 4 GiB on 3 bytes": b"\x80\x02X" + (2**32 - 1).to_bytes(4, "little") + b"abc",
    "LONG4 with a negative length": b"\x80\x02\x8b" + (2**32 - 1).to_bytes(4, "little"),
    "invalid UTF-8 in a string": b"\x80\x04\x8c\x02\xff\xfe.",
    "stop with an empty stack": b"\x80\x04.",
}


@pytest.mark.parametrize("data", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_corrupt_pickle_is_one_error(tmp_path, data):
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    with pytest.raises(MsabenchError, match="bad.pkl.*truncated or corrupt"):
        mmsa.read_pickle(path)


def test_random_bytes_are_one_error(tmp_path):
    """Whatever the bytes, reading ends in MsabenchError, never another exception."""
    rng = np.random.default_rng(20261205)
    path = tmp_path / "noise.pkl"
    for i in range(400):
        head = b"\x80" + bytes([int(rng.integers(2, 6))]) if i % 2 else b""  # half look like a pickle
        path.write_bytes(head + rng.bytes(int(rng.integers(1, 300))))
        try:
            got = mmsa.read_pickle(path)
        except MsabenchError as e:
            assert "noise.pkl" in str(e)
        else:  # a few byte strings are valid tiny pickles; they must then fail the MMSA checks
            with pytest.raises(MsabenchError):
                mmsa.from_dict(got, "mosi", "aligned_50", str(path))


def test_missing_file_names_expected_path(tmp_path):
    with pytest.raises(MsabenchError) as e:
        load("mosei", "unaligned_50", data_dir=tmp_path)
    assert str(tmp_path / "MOSEI" / "Processed" / "unaligned_50.pkl") in str(e.value)
    assert "MMSA" in str(e.value)
    with pytest.raises(MsabenchError, match="--data-dir"):
        load("sims", "unaligned_39")


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.pop("valid"), "split 'valid' is missing"),
    (lambda r: r["test"].pop("audio"), "split test: key 'audio' is missing"),
    (lambda r: r["test"].pop("regression_labels"), "key 'regression_labels' is missing"),
    (lambda r: r["test"].__setitem__("vision", r["test"]["vision"][:-1]), "split test, key vision: 39 rows but 40"),
    (lambda r: r["train"].__setitem__("audio", r["train"]["audio"][:, :, :2]), "shapes"),
    (lambda r: r["test"].__setitem__("text_bert", r["test"]["text_bert"][:, :2]), "text_bert"),
    (lambda r: r["test"]["regression_labels"].__setitem__(0, 7.0), "outside [-3.0, 3.0]"),
])
def test_inconsistent_files(tmp_path, mutate, needle):
    raw = small_raw()
    mutate(raw)
    path = write_pickle(tmp_path / "bad.pkl", raw)
    with pytest.raises(MsabenchError) as e:
        mmsa.load(path, "mosi", "aligned_50")
    assert needle in str(e.value) and str(path) in str(e.value)


def test_not_a_dict(tmp_path):
    path = write_pickle(tmp_path / "list.pkl", [1, 2, 3])
    with pytest.raises(MsabenchError, match="expected a dict"):
        mmsa.load(path, "mosi", "aligned_50")
