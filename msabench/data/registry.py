"""One home for each dataset's facts: its metric family, label range, split sizes and variants.

Protocols (which datasets and variants a protocol file may name), the loaders (which shapes a
variant must have), the synthetic generator (split sizes), metrics (label ranges) and the docs
read them from here. The numbers are those of MMSA's processed files (CMU-MOSI, CMU-MOSEI,
CH-SIMS) and of the utterance-level feature tables `msabench.data.table` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from msabench.errors import MsabenchError

LABEL_RANGE = {"mosi": (-3.0, 3.0), "sims": (-1.0, 1.0)}  # per metric family: the annotation scale


@dataclass(frozen=True)
class Variant:
    """One file layout of a dataset."""

    name: str
    carries: str  # what a model gets, in words
    aligned: bool | None = None  # audio and vision aligned to the text (one length); None: not sequences
    lengths: tuple[int, int, int] | None = None  # text / audio / vision steps of MMSA's file (None: any)
    text_features: bool = False  # MMSA's 768-d token features (key `text`) are required
    # Its token features were computed with the whole clean transcript in context (BERT states): a kept
    # token's vector still carries the words a protocol drops, so zeroing dropped positions is milder
    # than dropping them (`text_in_context`).
    in_context: bool = False


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    kind: str  # metric family: "mosi" (MOSI/MOSEI metrics, labels in [-3, 3]) or "sims"
    sizes: tuple[int, int, int] | None  # train / valid / test samples (None: whatever the user's file has)
    variants: tuple[Variant, ...]  # the first is the default
    about: str

    @property
    def labels(self) -> tuple[float, float]:
        return LABEL_RANGE[self.kind]

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise MsabenchError(f"{name!r} is not a variant of {self.name}; allowed: {', '.join(self.variant_names)}")


_IDS = "BERT token ids ([N, 3, L]: ids, mask, segments)"
ALIGNED_50 = Variant("aligned_50", f"{_IDS}, 768-d token features, audio and vision aligned to the words (50 steps)",
                     aligned=True, lengths=(50, 50, 50), in_context=True)
_TABLE = (
    Variant("features", "utterance-level vectors: text, audio and vision one vector each"),
    Variant("tokens", "WordPiece ids of the transcript (packaged MiniLM vocabulary); audio and vision vectors"),
    Variant("words", "word ids of the transcript; audio and vision vectors"),
    Variant("states", "MiniLM token states added by `msabench data embed` (key text_states); audio and vision",
            in_context=True),
)
_SYNTH = (
    Variant("aligned_50", f"{_IDS}, audio 5-d and vision 20-d aligned to the words (50 steps)", aligned=True,
            lengths=(50, 50, 50)),
    Variant("aligned_50_features", "aligned_50 plus MMSA's 768-d token features (key text)", aligned=True,
            lengths=(50, 50, 50), text_features=True),
    Variant("unaligned_50", f"{_IDS}, 768-d token features, audio 375 and vision 500 steps", aligned=False,
            lengths=(50, 375, 500)),
)

DATASETS: dict[str, DatasetFacts] = {d.name: d for d in (
    DatasetFacts("mosi", "mosi", (1284, 229, 686), (
        ALIGNED_50,
        Variant("unaligned_50", f"{_IDS}, 768-d token features, audio 375 x 5, vision 500 x 20", aligned=False,
                lengths=(50, 375, 500), in_context=True),
    ), "CMU-MOSI, MMSA's processed pickles (MOSI/Processed/*.pkl)"),
    DatasetFacts("mosei", "mosi", (16326, 1871, 4659), (
        ALIGNED_50,
        Variant("unaligned_50", f"{_IDS}, 768-d token features, audio 500 x 74, vision 500 x 35", aligned=False,
                lengths=(50, 500, 500), in_context=True),
    ), "CMU-MOSEI, MMSA's processed pickles (MOSEI/Processed/*.pkl)"),
    DatasetFacts("sims", "sims", (1368, 456, 457), (
        Variant("unaligned_39", f"{_IDS} (bert-base-chinese), 768-d token features, audio 400 x 33, vision 55 x 709",
                aligned=False, lengths=(39, 400, 55), in_context=True),
    ), "CH-SIMS, MMSA's processed pickle (SIMS/Processed/unaligned_39.pkl), with T/A/V labels"),
    DatasetFacts("synth-mosi", "mosi", (1284, 229, 686), _SYNTH,
                 "generated in-process in the shape of MMSA's MOSI files (msabench.data.synth)"),
    DatasetFacts("synth-sims", "sims", (1368, 456, 457), _SYNTH,
                 "synth-mosi labelled as CH-SIMS ([-1, 1], T/A/V labels, CH-SIMS's split sizes)"),
    DatasetFacts("mosi-utt", "mosi", None, _TABLE,
                 "all 2199 CMU-MOSI utterances as an utterance-level feature table (mosi-utterance.npz)"),
    DatasetFacts("utt", "mosi", None, _TABLE, "any utterance-level feature table with a `split` column"),
)}


def facts(name: str) -> DatasetFacts:
    if name not in DATASETS:
        raise MsabenchError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def kind(name: str) -> str:
    """The metric family of `name` (a user's MMSA-layout data under another name reads as MOSI)."""
    return DATASETS[name].kind if name in DATASETS else "mosi"


def text_in_context(name: str, variant: str) -> bool:
    """Whether `variant`'s token features carry context (MMSA's BERT `text`, msabench's MiniLM states).
    The synthetic data's are each token's own vector plus noise (`msabench.data.synth`, step 6), so
    zeroing one removes its word; a layout msabench does not know is assumed to carry context."""
    known = name in DATASETS and variant in DATASETS[name].variant_names
    return DATASETS[name].variant(variant).in_context if known else True


def check_shapes(name: str, variant: str, lengths: tuple[int, int, int], has_text_features: bool,
                 source: str) -> None:
    """Data read for `variant` must look like it, from its arrays, whatever the file is called: aligned
    data has one length for text, audio and vision, unaligned data does not."""
    known = name in DATASETS and variant in DATASETS[name].variant_names
    v = DATASETS[name].variant(variant) if known else None  # else a user's layout: judged by its name
    aligned = lengths[0] == lengths[1] == lengths[2]
    shown = "/".join(map(str, lengths))
    want_aligned = v.aligned if v is not None else variant.startswith("aligned")
    if want_aligned and not aligned:
        raise MsabenchError(f"{source}: the protocol needs {variant} (audio and vision aligned to the text), but this "
                            f"data's text/audio/vision lengths are {shown}: unaligned data; use a protocol for its "
                            "variant")
    if want_aligned is False and aligned:
        raise MsabenchError(f"{source}: the protocol needs {variant} (unaligned audio and vision), but this data's "
                            f"text/audio/vision lengths are all {lengths[0]}: aligned data (e.g. MMSA's aligned_50); "
                            "use a protocol for the aligned variant")
    needs_features = v.text_features if v is not None else variant.endswith("_features")
    if needs_features and not has_text_features:
        raise MsabenchError(f"{source}: the protocol needs {variant}, with MMSA's token features (key 'text'), but "
                            "this data has token ids only; use a protocol for its variant")
