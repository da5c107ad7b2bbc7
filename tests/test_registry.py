"""The dataset registry is the one home of dataset facts, and what it says is what the code does."""

import numpy as np
import pytest

from msabench import metrics, protocols
from msabench.data import hf, load, registry, synth, table
from msabench.data.core import SPLITS
from msabench.errors import MsabenchError

from conftest import small_raw, write_pickle


def test_every_reader_takes_its_facts_from_the_registry():
    assert protocols.DATASETS == {n: d.variant_names for n, d in registry.DATASETS.items()}
    assert metrics.LABEL_RANGE == registry.LABEL_RANGE and set(metrics.METRICS) == set(registry.LABEL_RANGE)
    assert set(registry.DATASETS["synth-mosi"].variant_names) == set(synth.VARIANTS)
    for name, shape in synth.VARIANTS.items():  # the generator makes what the registry says
        v = registry.DATASETS["synth-mosi"].variant(name)
        assert (shape["text_len"], shape["audio_len"], shape["vision_len"]) == v.lengths
        assert shape["aligned"] == v.aligned
    assert table.TEXT_CHOICES == registry.DATASETS["mosi-utt"].variant_names
    for name in ("synth-mosi", "synth-sims"):
        ds = synth.make_dataset(name=name)
        assert tuple(len(ds[s]) for s in SPLITS) == registry.DATASETS[name].sizes
        assert ds.kind == registry.kind(name) and ds.info.label_range == registry.DATASETS[name].labels
        assert registry.DATASETS[name].labels[0] <= ds["test"].labels.min() <= ds["test"].labels.max() <= \
            registry.DATASETS[name].labels[1]


def test_a_protocol_may_name_every_registered_variant():
    """README's `variant = "states"` for feature tables: the protocol check used to refuse it."""
    for name, d in registry.DATASETS.items():
        for v in d.variant_names:
            p = protocols.parse({"name": "p", "version": 1, "dataset": name, "variant": v, "seeds": [1],
                                 "primary_metric": "MAE", "missing": {"kind": "inter"}}, "test")
            assert p.variant == v and p.metric_kind == d.kind
    with pytest.raises(MsabenchError, match="not a variant of mosi"):
        protocols.parse({"name": "p", "version": 1, "dataset": "mosi", "variant": "states", "seeds": [1],
                         "primary_metric": "MAE", "missing": {"kind": "inter"}}, "test")


@pytest.mark.parametrize("form", ["pickle", "hf"])
def test_aligned_data_is_refused_for_an_unaligned_protocol_whatever_its_name(tmp_path, form):
    """From the arrays' lengths, not the file name: a 50/50/50 file named synth.pkl, or converted to a Hugging
    Face folder that calls itself unaligned_50, is not MOSI's unaligned_50."""
    pkl = write_pickle(tmp_path / "synth.pkl", small_raw())
    path = pkl
    if form == "hf":
        ds = synth.make_dataset()  # aligned arrays
        path = tmp_path / "folder"
        hf.save(ds, path)
        meta = path / hf.META_FILE
        meta.write_text(meta.read_text().replace('"aligned_50"', '"unaligned_50"').replace('"synth-mosi"', '"mosi"'))
    with pytest.raises(MsabenchError, match=r"needs unaligned_50 \(unaligned audio and vision\), but this data's "
                                            r"text/audio/vision lengths are all 50: aligned data"):
        load("mosi", "unaligned_50", data=path)
    unaligned = write_pickle(tmp_path / "aligned_50.pkl", small_raw(aligned=False, audio_len=30, vision_len=40))
    ds = load("mosi", "unaligned_50", data=unaligned)  # the file name no longer decides
    assert ds.variant == "unaligned_50" and ds["train"].audio.shape[1] == 30
    assert np.isfinite(ds["test"].labels).all()


def test_datasets_command_prints_the_registry():
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "msabench", "datasets"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for d in registry.DATASETS.values():
        assert f"| {d.name} " in proc.stdout
        for v in d.variants:
            assert f" {v.name} " in proc.stdout and v.carries in proc.stdout
            if v.lengths:
                assert "/".join(map(str, v.lengths)) in proc.stdout
    assert "16326/1871/4659" in proc.stdout and "[-1, 1]" in proc.stdout
