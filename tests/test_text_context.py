"""Token features computed in context never stand in for dropped words without saying so (issue 35.1)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, small_raw, write_file, write_pickle
from msabench import executors, protocols, submission
from msabench.data import load, registry
from msabench.errors import MsabenchError


def test_registry_says_which_features_carry_context():
    assert registry.text_in_context("mosi", "unaligned_50") and registry.text_in_context("sims", "unaligned_39")
    assert registry.text_in_context("mosi-utt", "states")  # MiniLM states of the clean transcript
    assert not registry.text_in_context("synth-mosi", "aligned_50_features")  # each token's own vector + noise
    assert registry.text_in_context("somebody", "layout")  # unknown: assumed in context


def test_which_protocols_drop_text_tokens():
    assert protocols.load("mosi-intra").drops_text_tokens
    assert not protocols.load("mosi-inter").drops_text_tokens  # whole modalities: nothing of a dropped text is left
    only_av = protocols.parse({"name": "av", "version": 1, "dataset": "mosi", "seeds": [1], "primary_metric": "MAE",
                               "missing": {"kind": "intra", "modalities": ["A", "V"], "rates": [0.0, 0.5]}}, "test")
    assert not only_av.drops_text_tokens


@pytest.fixture(scope="module")
def mosi_with_features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mosi")
    pkl = write_pickle(folder / "unaligned_50.pkl", small_raw(aligned=False, audio_len=30, vision_len=40,
                                                              text_feature_dim=16))
    return pkl, load("mosi", "unaligned_50", data=pkl)


def _check(protocol: str, specs: list[str], dataset) -> list[str]:
    p = protocols.load(protocol)
    subs = {s: submission.load(s) for s in specs}
    return executors.check_text([p], subs, {(p.dataset, p.variant): dataset})


def test_bundled_models_refuse_clean_context_features_under_token_drops(mosi_with_features):
    _, data = mosi_with_features
    with pytest.raises(MsabenchError, match=r"late-fusion on mosi-intra: .*clean transcript.*text_input=clean_features"):
        _check("mosi-intra", ["late-fusion"], data)
    with pytest.raises(MsabenchError, match=r"mmsa-tfn on mosi-intra: .*self_mm.*text_encoder=clean_features") as e:
        _check("mosi-intra", ["mmsa:tfn"], data)
    assert "text_encoder=minilm" not in str(e.value)  # MMSA's feature models never read ids: no such advice
    with pytest.raises(MsabenchError, match="text_input=clean_features"):
        _check("mosi-intra", ["lnln:text_input=features"], data)  # asking for features is not enough
    # declared, ids re-encoded, or whole-modality drops: allowed
    assert _check("mosi-intra", ["late-fusion:text_input=clean_features", "mmsa:tfn,text_encoder=clean_features",
                                 "late-fusion:text_encoder=minilm", "text-only:text_input=ids", "mean"], data) == []
    assert _check("mosi-inter", ["late-fusion", "mmsa:tfn"], data) == []


def test_context_free_synthetic_features_run_as_before():
    from msabench.data import synth

    data = synth.make_dataset(variant="aligned_50_features", sizes=(40, 20, 20))
    assert _check("synth-features-intra", ["late-fusion", "mmsa:tfn"], data) == []


def test_a_file_submission_is_told_what_its_text_features_are(mosi_with_features, tmp_path):
    _, data = mosi_with_features
    sub = write_file(tmp_path / "mine.py", """
        class M:
            def predict(self, batch, mask):
                return batch.audio[:, 0, 0] * 0.0

        def build(info):
            return M()
        """)
    notes = _check("mosi-intra", [str(sub)], data)
    assert len(notes) == 1 and "mine on mosi-intra" in notes[0] and "clean transcript" in notes[0]


def test_the_cli_refuses_in_one_line_before_any_work(mosi_with_features, tmp_path):
    pkl, _ = mosi_with_features
    out = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "msabench", "run", "--protocol", "mosi-intra", "--model",
                           "late-fusion", "--data", str(pkl), "--out", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and "clean transcript" in lines[0], proc.stderr
    assert not out.exists() or not any(out.rglob("predictions*"))
