"""`synth-mosi`: a deterministic synthetic stand-in for MMSA's MOSI `aligned_50.pkl` / `unaligned_50.pkl`.

msabench must run (tests, examples, a first leaderboard entry) without the real
CMU-MOSI files, which users download themselves. This module generates, from one
integer seed and in a fraction of a second, a dataset with MOSI's split sizes, file
layout, label granularity and rough difficulty. It is NOT real data: numbers on it
say whether code works and whether a model degrades sensibly when inputs go missing,
never how good a model is on MOSI. Nothing in it comes from real recordings.

`make_raw` returns the dict an MMSA processed pickle holds; `make_dataset` converts it
into msabench's `Dataset` named "synth-mosi". The same arguments give bit-identical
arrays on every run; another seed gives other data.

`synth-sims` (`make_dataset(name="synth-sims")`, `make_raw(labels="sims")`) is the same
process labelled as CH-SIMS is (step 7): labels in [-1, 1] plus unimodal T/A/V labels, at
CH-SIMS's split sizes. MMSA's multi-task models (MLF-DNN, MTFN, MLMF) train on those
unimodal labels, which no MOSI-layout data has.

Variants (`VARIANTS`, picked by `make_dataset(variant=...)` and `msabench.data.load`)
----------------------------------------------------------------------------------
- `aligned_50` (default): small and fast (~0.1 s), for tests, examples and the leaderboard.
- `aligned_50_features`: `aligned_50` plus MMSA's `text` key (768-d token features,
  step 6), as in MMSA's real `aligned_50.pkl`: for the models that read text features
  rather than ids (MMSA's TFN, MulT, MCTN...). Every other array equals `aligned_50`'s.
- `unaligned_50`: MOSI's real unaligned shapes (text 50 ids + 768-d features, audio
  375 x 5, vision 500 x 20), so speed and memory at real scale can be measured offline.
  Audio lengths run from 37 to 374 (median ~83), vision from 50 to 499 (median ~110).
  The full dataset holds ~444 MB of arrays (338 MB of them text features) and takes
  1-2 s and ~0.6 GB peak RSS to generate (one CPU core).

File layout (as in MMSA's MOSI pickles)
---------------------------------------
`{"train": {...}, "valid": {...}, "test": {...}}` (default 1284 / 229 / 686 samples),
each split holding
- `text_bert` float32 [N, 3, L]: BERT input ids, attention mask, segment ids (all 0).
  [CLS]=101 at position 0, [SEP]=102 at the last valid position, [PAD]=0 after it;
  [UNK]=100 never occurs (it is what missing-token protocols write). Word ids lie in
  1000..29999. Valid lengths, [CLS]/[SEP] included, run from 8 to L (median ~13).
- `audio` float32 [N, Ta, 5], `vision` float32 [N, Tv, 20].
- `regression_labels` float32 [N] in [-3, 3]; `classification_labels` float32 [N]
  (0 negative, 1 neutral, 2 positive: deprecated in MMSA, kept for compatibility);
  `annotations` object [N]: "Negative" / "Neutral" / "Positive", the label's sign.
  synth-sims (`labels="sims"`): `regression_labels` in [-1, 1] (multiples of 0.2), and
  `regression_labels_T`, `_A`, `_V` likewise, as in MMSA's CH-SIMS pickles (step 7).
- `id` object [N]: "videoid$_$clipnum", 6 to 41 clips per made-up 11-character video
  id (the last video of a split may have fewer); no video spans two splits
  (speaker-independent splits, as in MOSI).
- `raw_text` object [N]: the tokens between [CLS] and [SEP], written "w<id>".
- `text` float32 [N, L, D], only with `text_feature_dim` = D > 0 (variants aligned_50_features
  and unaligned_50):
  "BERT-like" features of the `text_bert` tokens, so models that read MMSA's `text`
  run at real size. Padding positions are exactly zero; see step 6.
Aligned (default): every modality has L = 50 steps and there are no length arrays;
audio/vision frames at and beyond the text length are zero, as in MMSA's aligned files
(whose loaders use the text length as the audio/vision length). Unaligned
(`aligned=False`): audio and vision are padded to `audio_len` / `vision_len`, with
`audio_lengths` / `vision_lengths` (lists of int, between 2 and the padded length - 1,
roughly proportional to the number of words) and zero frames after them.

Generating process (independent `np.random.default_rng` streams spawned from the seed)
-------------------------------------------------------------------------------------
1. Videos. Each split is filled with videos of 6..41 clips (~90 videos in all by
   default). A video has a speaker bias b ~ N(0.15, 0.6) on its clips' sentiment, and
   per-feature audio and vision offsets ~ N(0, 0.1) (speaker identity: a nuisance,
   unrelated to sentiment).
2. Sentiment. A clip's sentiment is s = 3.3 tanh((b + N(0, 1.9)) / 3.3); 7% of clips
   are neutral statements with s ~ N(0, 0.1). The words express s_T = s + N(0, 0.5).
   Voice and face express s_nv = s + N(0, 0.3), except in 15% of clips where they
   contradict the words (sarcasm, a forced smile): s_nv = -0.7 s + N(0, 0.6).
3. Label. The perceived sentiment is 0.55 s_T + 0.45 s_nv, so the label follows a mix
   when modalities disagree. As in MOSI's crowd labels, 5 annotators (4 or 3 for 8% /
   7% of clips) each rate round(perceived + N(0, 0.5)) clipped to [-3, 3], and the
   label is their mean: multiples of 1/5 (some of 1/4 and 1/3), about 7% exact zeros,
   more mass near the middle than at +-3 (standard deviation ~1.46; real MOSI has
   4.4% zeros, mostly fifths, a flatter histogram and a standard deviation of 1.57).
4. Text. A clip has n ~ lognormal(median 11, sigma 0.55) content tokens, clipped to
   [6, L - 2]. Most are neutral words from a Zipf-distributed vocabulary of 4000 ids.
   Sentiment sits on a few of them: 2 + Binomial(n - 2, 0.06) random positions (none
   in the 20% of clips whose words carry no sentiment, which only voice and face
   reveal). Each such token gets a polarity s_T + N(0, 0.25), reversed with
   probability 0.03 (hedges, negations), rounded to one of 12 levels (+-0.5 .. +-3),
   and is one of that level's 8 synonyms (Zipf-frequent). Text is the strongest
   modality, but it rests on about two tokens per clip, so dropping tokens removes
   evidence gradually.
5. Audio and vision. Every valid frame is the speaker offset plus N(0, 1) noise per
   feature. A random 12% of the frames are expressive: they add
   (s_nv + N(0, 0.5), drawn per clip and modality) x gain along a fixed random unit
   direction (audio: over all 5 features, gain 0.65; vision: over 3 of the 20
   features, gain 0.87). Each is a weak, noisy cue on its own.
6. Text features (`text`, from a 7th stream, so every other array is the same with or
   without them). Each word id, [CLS] and [SEP] has a fixed random vector, N(0, 1/D)
   per feature (norm ~1); a sentiment word's vector also has its polarity level / 3
   along one fixed random unit direction, so a linear readout finds the words'
   sentiment as a model reading ids does. Each token adds context noise N(0, 0.15^2/D)
   per feature: a word is much closer to itself elsewhere (distance ~0.2) than to
   another word (~1.4). Built in float32, 256 samples at a time (the full size is large).
7. CH-SIMS labels (`labels="sims"`, from an 8th stream, so steps 1-6 draw as without them).
   CH-SIMS's five annotators each give a polarity (-1, 0, 1), and the label is their mean
   (multiples of 0.2 in [-1, 1]); annotators who saw one modality alone label that
   modality. Here the multimodal label is the polarity of the first five step-3 ratings
   (sign(round(perceived + noise))), and each unimodal label is five fresh raters'
   polarities of what that modality expresses: s_T for text, s_nv for audio and, with its
   own raters, for vision. So T and the audio/vision labels disagree where the clip is
   sarcastic, as CH-SIMS's unimodal labels disagree with each other.
What a simple model sees on aligned_50: the example submission (`submissions/example.py`,
seed 1111), tested on the test split with the same fraction r of tokens and frames
dropped in all three modalities (mask seed 1111), scores Non0 Acc-2 0.80 at r = 0,
0.77 at r = 0.3, 0.72 at 0.5, 0.67 at 0.7 and 0.58 at 0.9: the shape of LNLN's
published MOSI curve.
Text alone gives 0.79 (MAE 0.86 against 0.80 with all three), audio alone 0.62, vision
alone 0.59, a constant prediction 0.52. Other seeds move these by a point or two.
"""

from __future__ import annotations

import numpy as np

from msabench.data import registry
from msabench.data.core import CLS_ID, PAD_ID, SEP_ID, Dataset
from msabench.errors import MsabenchError

NAME = "synth-mosi"
SIMS_NAME = "synth-sims"
DEFAULT_SIZES = registry.DATASETS["synth-mosi"].sizes  # MOSI's train / valid / test
SIMS_SIZES = registry.DATASETS["synth-sims"].sizes  # CH-SIMS's
LABELS = ("mosi", "sims")  # label layouts: MOSI's [-3, 3], CH-SIMS's [-1, 1] with T/A/V labels
GENERATED = {NAME: {}, SIMS_NAME: {"labels": "sims", "sizes": SIMS_SIZES}}  # name -> its make_raw arguments
_SPLITS = ("train", "valid", "test")

# Word ids: real-word range of bert-base-uncased, clear of the special tokens.
_WORD_LO, _WORD_HI = 1000, 30000
_N_NEUTRAL = 4000
_LEVELS = np.array([-3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
_SYNONYMS = 8
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))

# Generating process (see the module docstring; change both together). Calibrated with
# the example submission so that missing tokens/frames degrade it gradually.
_VIDEO_CLIPS = (6, 42)  # clips per video, [lo, hi)
_BIAS_MEAN, _BIAS_SD = 0.15, 0.6  # speaker bias per video
_CLIP_SD = 1.9
_NEUTRAL_P, _NEUTRAL_SD = 0.07, 0.1
_TEXT_SD, _NV_SD = 0.5, 0.3
_DISAGREE_P, _DISAGREE_SLOPE, _DISAGREE_SD = 0.15, -0.7, 0.6
_TEXT_WEIGHT = 0.55
_ANNOTATORS = ((5, 0.85), (4, 0.08), (3, 0.07))
_RATER_SD = 0.5
_SIMS_RATERS = 5  # CH-SIMS: five annotators per clip, each giving -1, 0 or 1
_LEN_MEDIAN, _LEN_SIGMA, _LEN_MIN = 11.0, 0.55, 6
_IMPLICIT_P = 0.2  # clips whose words carry no sentiment (only voice and face do)
_MIN_CUES, _CUE_RATE, _CUE_SD, _CUE_FLIP = 2, 0.06, 0.25, 0.03
_OFFSET_SD, _FRAME_SD, _EXPR_SD = 0.1, 1.0, 0.5
_AUDIO_EXPR_P, _AUDIO_GAIN = 0.12, 0.65
_VISION_EXPR_P, _VISION_GAIN, _VISION_ACTIVE = 0.12, 0.87, 3
_FEAT_POLARITY_GAIN, _FEAT_CONTEXT_SD = 1.0, 0.15  # relative to a word vector's norm (~1)
_FEAT_CHUNK = 256  # samples per block of text features (bounds temporaries; fixes the draw order)

# Named variants, as MMSA names its MOSI files; `make_dataset` starts from one of them.
VARIANTS: dict[str, dict] = {
    "aligned_50": dict(aligned=True, text_len=50, audio_len=50, vision_len=50, audio_dim=5, vision_dim=20),
    "aligned_50_features": dict(aligned=True, text_len=50, audio_len=50, vision_len=50, audio_dim=5, vision_dim=20,
                                text_feature_dim=768),
    "unaligned_50": dict(aligned=False, text_len=50, audio_len=375, vision_len=500, audio_dim=5, vision_dim=20,
                         text_feature_dim=768),
}


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < lo:
        raise MsabenchError(f"synth-mosi: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _zipf(n: int, exponent: float = 1.0, shift: float = 2.7) -> np.ndarray:
    p = 1.0 / (np.arange(n) + shift) ** exponent
    return p / p.sum()


def _video_ids(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct 11-character YouTube-like ids."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        for row in _ID_ALPHABET[rng.integers(0, len(_ID_ALPHABET), size=(count - len(out), 11))]:
            vid = "".join(row)
            if vid not in seen:
                seen.add(vid)
                out.append(vid)
    return out


def _frames(rng, n_frames, lengths, offsets, sentiment, direction, gain, expr_p):
    """[N, T, D] float32 frames: offset + noise + sparse sentiment bursts; zero past `lengths`."""
    n, dim = offsets.shape
    valid = np.arange(n_frames)[None, :] < lengths[:, None]
    x = rng.standard_normal((n, n_frames, dim), dtype=np.float32) * np.float32(_FRAME_SD)
    x += offsets[:, None, :].astype(np.float32)
    expressive = (rng.random((n, n_frames)) < expr_p) & valid
    amplitude = (sentiment + rng.normal(0.0, _EXPR_SD, n)) * gain  # per clip
    x += (expressive * amplitude[:, None]).astype(np.float32)[:, :, None] * direction.astype(np.float32)
    x *= valid[:, :, None]
    return x


def _text_features(rng: np.random.Generator, tokens: np.ndarray, length: np.ndarray, neutral_ids: np.ndarray,
                   lexicon: np.ndarray, dim: int) -> np.ndarray:
    """float32 [N, L, dim] BERT-like features of `tokens`, built block by block in float32 (full size is large)."""
    n, steps = tokens.shape
    vocab = np.concatenate([[CLS_ID, SEP_ID], neutral_ids, lexicon.ravel()])
    row = np.zeros(_WORD_HI, dtype=np.int64)
    row[vocab] = np.arange(vocab.size)
    polarity = np.zeros(vocab.size, dtype=np.float32)
    polarity[2 + neutral_ids.size :] = np.repeat(_LEVELS, lexicon.shape[1]) / 3.0
    direction = rng.standard_normal(dim, dtype=np.float32)
    direction /= np.linalg.norm(direction)
    table = rng.standard_normal((vocab.size, dim), dtype=np.float32) * np.float32(1.0 / np.sqrt(dim))
    table += np.float32(_FEAT_POLARITY_GAIN) * polarity[:, None] * direction
    noise_sd = np.float32(_FEAT_CONTEXT_SD / np.sqrt(dim))
    out = np.zeros((n, steps, dim), dtype=np.float32)  # padding stays exactly zero
    for start in range(0, n, _FEAT_CHUNK):
        sl = slice(start, start + _FEAT_CHUNK)
        valid = np.arange(steps)[None, :] < length[sl, None]
        x = table[row[tokens[sl][valid]]]
        x += rng.standard_normal(x.shape, dtype=np.float32) * noise_sd
        out[sl][valid] = x
    return out


def make_raw(
    seed: int = 0,
    sizes: tuple[int, int, int] = DEFAULT_SIZES,
    text_len: int = 50,
    audio_len: int = 50,
    vision_len: int = 50,
    audio_dim: int = 5,
    vision_dim: int = 20,
    aligned: bool = True,
    text_feature_dim: int = 0,
    labels: str = "mosi",
) -> dict:
    """The synth-mosi data as an MMSA processed-pickle dict (see the module docstring).

    `text_feature_dim` > 0 adds MMSA's `text` key; every other array is unchanged by it.
    `labels="sims"` labels it as CH-SIMS is (step 7); the inputs are unchanged by it.
    """
    seed = _check_int("seed", seed, 0)
    if labels not in LABELS:
        raise MsabenchError(f"synth-mosi: labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if len(tuple(sizes)) != 3:
        raise MsabenchError(f"synth-mosi: sizes must be (train, valid, test), got {sizes!r}")
    sizes = tuple(_check_int("each of sizes", s, 0) for s in sizes)
    text_len = _check_int("text_len", text_len, 4)
    audio_dim = _check_int("audio_dim", audio_dim, 1)
    vision_dim = _check_int("vision_dim", vision_dim, _VISION_ACTIVE)
    if aligned:
        if audio_len != text_len or vision_len != text_len:
            raise MsabenchError(
                f"synth-mosi: aligned data has every modality at text_len={text_len} steps, got "
                f"audio_len={audio_len}, vision_len={vision_len}; pass equal lengths or aligned=False"
            )
    audio_len = _check_int("audio_len", audio_len, 3)
    vision_len = _check_int("vision_len", vision_len, 3)
    text_feature_dim = _check_int("text_feature_dim", text_feature_dim, 0)

    # spawn(8)[:6] == spawn(6): the 7th stream (text features) and the 8th (CH-SIMS labels) leave the
    # other arrays as they were.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    r_video, r_latent, r_label, r_text, r_audio, r_vision, r_feat, r_sims = streams

    # 1. Videos, split by split (no video crosses splits), clips numbered from 1.
    counts_per_split = []
    for n in sizes:
        counts: list[int] = []
        while sum(counts) < n:
            counts.append(int(r_video.integers(*_VIDEO_CLIPS)))
        if counts:
            counts[-1] -= sum(counts) - n
        counts_per_split.append(counts)
    all_counts = np.array([c for cs in counts_per_split for c in cs], dtype=np.int64)
    n_videos = len(all_counts)
    vids = np.array(_video_ids(r_video, n_videos), dtype=object)
    video = np.repeat(np.arange(n_videos), all_counts)
    n_total = int(all_counts.sum())
    starts = np.repeat(np.cumsum(all_counts) - all_counts, all_counts)
    clip_no = np.arange(n_total) - starts + 1
    ids = np.array([f"{v}$_${c}" for v, c in zip(vids[video], clip_no)], dtype=object)
    bias = r_video.normal(_BIAS_MEAN, _BIAS_SD, n_videos)
    audio_off = r_video.normal(0.0, _OFFSET_SD, (n_videos, audio_dim))
    vision_off = r_video.normal(0.0, _OFFSET_SD, (n_videos, vision_dim))

    # 2. Clip sentiment, per modality.
    s = 3.3 * np.tanh((bias[video] + r_latent.normal(0.0, _CLIP_SD, n_total)) / 3.3)
    neutral = r_latent.random(n_total) < _NEUTRAL_P
    s = np.where(neutral, r_latent.normal(0.0, _NEUTRAL_SD, n_total), s)
    s_text = s + r_latent.normal(0.0, _TEXT_SD, n_total)
    disagree = r_latent.random(n_total) < _DISAGREE_P
    s_nv = np.where(
        disagree,
        _DISAGREE_SLOPE * s + r_latent.normal(0.0, _DISAGREE_SD, n_total),
        s + r_latent.normal(0.0, _NV_SD, n_total),
    )

    # 3. Labels: mean of 3-5 annotators' integer ratings.
    perceived = _TEXT_WEIGHT * s_text + (1.0 - _TEXT_WEIGHT) * s_nv
    n_max = max(k for k, _ in _ANNOTATORS)
    ratings = np.clip(np.rint(perceived[:, None] + r_label.normal(0.0, _RATER_SD, (n_total, n_max))), -3, 3)
    n_ann = r_label.choice([k for k, _ in _ANNOTATORS], size=n_total, p=[p for _, p in _ANNOTATORS])
    used = np.arange(n_max)[None, :] < n_ann[:, None]
    label = ((ratings * used).sum(1) / n_ann).astype(np.float32)
    unimodal = {}
    if labels == "sims":  # 7. polarities, averaged over five raters
        label = np.sign(ratings[:, :_SIMS_RATERS]).mean(1).astype(np.float32)
        for m, expressed in (("T", s_text), ("A", s_nv), ("V", s_nv)):
            noisy = expressed[:, None] + r_sims.normal(0.0, _RATER_SD, (n_total, _SIMS_RATERS))
            unimodal[m] = np.sign(np.rint(noisy)).mean(1).astype(np.float32)

    # 4. Text: [CLS] content [SEP] [PAD]...
    word_ids = r_text.permutation(np.arange(_WORD_LO, _WORD_HI))
    neutral_ids = word_ids[:_N_NEUTRAL]
    lexicon = word_ids[_N_NEUTRAL : _N_NEUTRAL + _LEVELS.size * _SYNONYMS].reshape(_LEVELS.size, _SYNONYMS)
    max_content = text_len - 2
    n_tok = np.rint(r_text.lognormal(np.log(_LEN_MEDIAN), _LEN_SIGMA, n_total)).astype(np.int64)
    n_tok = np.clip(n_tok, min(_LEN_MIN, max_content), max_content)
    length = n_tok + 2
    pos = np.arange(text_len)[None, :]
    content = (pos >= 1) & (pos <= n_tok[:, None])
    tokens = neutral_ids[r_text.choice(_N_NEUTRAL, size=(n_total, text_len), p=_zipf(_N_NEUTRAL))]
    min_cue = np.minimum(_MIN_CUES, n_tok)
    n_cue = min_cue + r_text.binomial(n_tok - min_cue, _CUE_RATE)
    n_cue = np.where(r_text.random(n_total) < _IMPLICIT_P, 0, n_cue)  # sentiment only in voice/face
    keys = np.where(content, r_text.random((n_total, text_len)), 2.0)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    cue = content & (rank < n_cue[:, None])
    polarity = s_text[:, None] + r_text.normal(0.0, _CUE_SD, (n_total, text_len))
    polarity = np.where(r_text.random((n_total, text_len)) < _CUE_FLIP, -polarity, polarity)
    level = np.clip(np.rint(polarity * 2.0) / 2.0, -3.0, 3.0)
    level = np.where(level == 0.0, np.where(polarity >= 0.0, 0.5, -0.5), level)
    level_idx = np.searchsorted(_LEVELS, level)
    synonym = r_text.choice(_SYNONYMS, size=(n_total, text_len), p=_zipf(_SYNONYMS))
    tokens = np.where(cue, lexicon[level_idx, synonym], tokens)
    tokens = np.where(content, tokens, PAD_ID)
    tokens[:, 0] = CLS_ID
    tokens[np.arange(n_total), length - 1] = SEP_ID
    attention = (pos < length[:, None]).astype(np.float32)
    text_bert = np.stack([tokens.astype(np.float32), attention, np.zeros_like(attention)], axis=1)
    words = (" ".join(f"w{t}" for t in row[1 : n + 1]) for row, n in zip(tokens.tolist(), n_tok.tolist()))
    raw_text = np.array(list(words), dtype=object)
    features = None
    if text_feature_dim:
        features = _text_features(r_feat, tokens, length, neutral_ids, lexicon, text_feature_dim)

    # 5. Audio and vision.
    if aligned:
        a_len = v_len = length
        a_steps = v_steps = text_len
    else:  # frame counts roughly proportional to the number of words, below the padded length
        frac = n_tok / max_content
        a_len = np.rint(frac * (audio_len - 1) * r_audio.uniform(0.8, 1.1, n_total))
        v_len = np.rint(frac * (vision_len - 1) * r_vision.uniform(0.8, 1.1, n_total))
        a_len = np.clip(a_len, 2, audio_len - 1).astype(np.int64)
        v_len = np.clip(v_len, 2, vision_len - 1).astype(np.int64)
        a_steps, v_steps = audio_len, vision_len
    a_dir = r_audio.standard_normal(audio_dim)
    a_dir /= np.linalg.norm(a_dir)
    v_dir = np.zeros(vision_dim)
    active = r_vision.choice(vision_dim, size=_VISION_ACTIVE, replace=False)
    v_dir[active] = r_vision.standard_normal(_VISION_ACTIVE)
    v_dir /= np.linalg.norm(v_dir)
    audio = _frames(r_audio, a_steps, a_len, audio_off[video], s_nv, a_dir, _AUDIO_GAIN, _AUDIO_EXPR_P)
    vision = _frames(r_vision, v_steps, v_len, vision_off[video], s_nv, v_dir, _VISION_GAIN, _VISION_EXPR_P)

    sign = np.sign(label).astype(np.int64)
    annotations = np.array(["Negative", "Neutral", "Positive"], dtype=object)[sign + 1]
    out = {}
    start = 0
    for name, n in zip(_SPLITS, sizes):
        sl = slice(start, start + n)
        start += n
        part = {
            "id": ids[sl].copy(),
            "raw_text": raw_text[sl].copy(),
            "text_bert": np.ascontiguousarray(text_bert[sl]),
            "audio": np.ascontiguousarray(audio[sl]),
            "vision": np.ascontiguousarray(vision[sl]),
            "regression_labels": label[sl].copy(),
            "classification_labels": (sign[sl] + 1).astype(np.float32),
            "annotations": annotations[sl].copy(),
        }
        if features is not None:
            part["text"] = features[sl]  # a contiguous view: no second copy of the largest array
        for m, values in unimodal.items():
            part[f"regression_labels_{m}"] = values[sl].copy()
        if not aligned:
            part["audio_lengths"] = [int(x) for x in a_len[sl]]
            part["vision_lengths"] = [int(x) for x in v_len[sl]]
        out[name] = part
    return out


def make_dataset(seed: int = 0, variant: str = "aligned_50", name: str = NAME, **overrides) -> Dataset:
    """`make_raw` with `variant`'s shapes (`VARIANTS`) updated by `overrides`, as a `Dataset` named
    `name` ("synth-mosi", or "synth-sims": CH-SIMS's labels and split sizes), read like any MMSA file.
    It is labelled `variant`; where `overrides` change the variant's shapes, the label follows the final
    `aligned`/`text_len` instead (they are no longer the named variant's)."""
    from msabench.data import mmsa

    if name not in GENERATED:
        raise MsabenchError(f"no generated dataset {name!r}; generated: {', '.join(GENERATED)}")
    if variant not in VARIANTS:
        raise MsabenchError(f"{name} has no variant {variant!r}; variants: {', '.join(VARIANTS)}")
    overrides = {**GENERATED[name], **overrides}
    kwargs = {**VARIANTS[variant], **overrides}
    reshaped = any(key in VARIANTS[variant] and value != VARIANTS[variant][key] for key, value in overrides.items())
    label = f"{'aligned' if kwargs['aligned'] else 'unaligned'}_{kwargs['text_len']}" if reshaped else variant
    return mmsa.from_dict(make_raw(seed, **kwargs), name, label, f"generated:{name} seed={seed}")
