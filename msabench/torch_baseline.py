"""What the bundled torch models share: options, encoders, the base class, the cache.

A bundled model is a `TorchBaseline` subclass with an `Options` dataclass and a
`make_net()` returning a `BaselineNet`. The base class trains it with the one recipe
(`msabench.training`), caches the checkpoint under a fingerprint of everything that
determines the weights, and predicts in float64 on one thread, cast to float32, so a
sample's score does not depend on the batch it arrives in.

Utterance-level feature tables (`msabench.data.table`) arrive as length-1 sequences
(text features, audio, vision; or token ids with length-1 audio/vision): every encoder
takes them as they are (a Transformer layer over one position, mean pooling over one
step). `input_noise` (off by default) adds Gaussian noise to observed input features in
training; on small utterance-level sets it plays the part of a ridge penalty.

Where they compute (`msabench.devices`): `device` (auto: a GPU when the job sees one),
`precision` (auto: bf16 on a GPU that has it, fp32 on CPU) and `threads` (0: the CPUs
the job is given). The resolved placement is part of the checkpoint's fingerprint;
checkpoints hold CPU float32 tensors, so one trained on a GPU loads anywhere
(`checkpoint=FILE`, `{seed}` in FILE replaced by the seed).

Text: `text_input=auto` reads precomputed token features (MMSA's 768-d BERT `text`) when
the data has them, unless `text_encoder=bert` asks for token ids.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import os
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from msabench.version import __version__
from msabench import attention, devices, training
from msabench.data import pretrained
from msabench.data.core import DatasetInfo, Split
from msabench.errors import MsabenchError
from msabench.interface import Batch, Mask

VOCAB = 30522  # bert-base-uncased; larger ids are clamped (bert-base-chinese has 21128)
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Options:
    """Options every bundled torch model takes (`--model NAME:key=value,...`)."""

    hidden: int = 64
    dropout: float = 0.1
    text_encoder: str = "scratch"  # "scratch" (embeddings + Transformer), "bert" (local HF weights) or "minilm"
    bert_path: str = ""  # folder with Hugging Face BERT weights, for text_encoder="bert"
    text_train: str = "auto"  # pretrained encoder: "finetune", "frozen"; auto: frozen for minilm, finetune for bert
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    patience: int = 6
    augment: bool = True  # joint missing augmentation during training (training.augmentation)
    input_noise: float = 0.0  # std of Gaussian noise on observed input features in training (0: off)
    bert_lr: float = 5e-5  # learning rate of the BERT parameters (text_encoder=bert), as MMSA
    # "auto", "ids", "features" or "clean_features": what the text encoder reads. Token features that carry
    # context (MMSA's BERT `text`) under a protocol that drops text tokens: only as "clean_features" (labelled)
    text_input: str = "auto"
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    precision: str = "auto"  # "auto", "fp32" or "bf16"
    threads: int = 0  # CPU threads; 0: the CPUs the job is given; 1: the exact single-thread mode
    checkpoint: str = ""  # a checkpoint file to load instead of the cache; {seed} -> the seed
    # "valid" (validation MAE) or "test-per-metric": LNLN's flaw, reproduced to measure it; the weights of
    # the epoch with the best `selection_metric` on the TEST split (training.TestSelection)
    selection: str = "valid"
    selection_metric: str = ""  # with selection=test-per-metric: the metric whose test-best epoch is kept
    # "msabench": the shared recipe (training.Recipe); "authors": the reference method's authors' optimiser,
    # learning rates, schedule, epochs, batch size, loss and augmentation (its options class's AUTHORS_RECIPE),
    # which replace the options epochs, lr, batch_size, patience, augment and bert_lr. Added after runs were
    # stored: repr=False keeps their identity at the default (`submission.identity`)
    recipe: str = field(default="msabench", repr=False)
    AUTHORS_RECIPE: ClassVar[training.Recipe | None] = None  # a reference method's: its authors' recipe

    def text_read(self, info: DatasetInfo) -> str:
        """What the model reads as text on `info` (`text_read`)."""
        return text_read(info, self)

    def clean_text_advice(self) -> str:
        """What to do instead of reading clean-context token features where text tokens are dropped."""
        return ("encode the corrupted ids instead (text_encoder=minilm, or text_encoder=bert,bert_path=DIR) or pass "
                "text_input=clean_features to run on them anyway, labelled as such")


# Where a model computes and where its weights come from: not part of what the weights ARE
# (the resolved placement is fingerprinted instead).
PLACEMENT = ("device", "precision", "threads", "checkpoint")
_RANGES = {  # option -> (test, the valid range as shown to the user)
    "hidden": (lambda v: v >= 4 and v % 4 == 0, "a multiple of 4 (attention heads), >= 4"),
    "dropout": (lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    "epochs": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "bert_lr": (lambda v: v > 0, "> 0"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "patience": (lambda v: v >= 1, ">= 1"),
    "input_noise": (lambda v: v >= 0, ">= 0"),
    "text_encoder": (lambda v: v in ("scratch", "bert", "minilm"), "'scratch', 'bert' or 'minilm'"),
    "text_train": (lambda v: v in ("auto", "finetune", "frozen"), "'auto', 'finetune' or 'frozen'"),
    "text_input": (lambda v: v in ("auto", "ids", "features", "clean_features"),
                   "'auto', 'ids', 'features' or 'clean_features'"),
    "selection": (lambda v: v in ("valid", "test-per-metric"), "'valid' or 'test-per-metric'"),
    "recipe": (lambda v: v in ("msabench", "authors"), "'msabench' or 'authors'"),
}


def parse_options(cls, raw: dict[str, str], model: str):
    """Strings from the command line -> a frozen options dataclass; one line per mistake."""
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, text in raw.items():
        if key not in known:
            raise MsabenchError(f"model {model} has no option {key!r}; options: "
                                f"{', '.join(f'{k}={v.default!r}' for k, v in known.items())}")
        default = known[key].default
        try:
            if isinstance(default, bool):
                if str(text).lower() not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
                    raise ValueError
                value = str(text).lower() in ("1", "true", "on", "yes")
            elif isinstance(default, (int, float, str)):
                value = type(default)(text)
            else:
                value = text
        except ValueError:
            raise MsabenchError(f"model {model}: option {key}={text!r} is not a {type(default).__name__}") from None
        values[key] = value
    opts = cls(**values)
    for key, (ok, shown) in {**_RANGES, **getattr(cls, "RANGES", {})}.items():  # a model's own: its RANGES
        if not ok(getattr(opts, key)):
            raise MsabenchError(f"model {model}: option {key} must be {shown}, got {getattr(opts, key)!r}")
    devices.check(opts.device, opts.precision, opts.threads, where=f"model {model}")
    check_selection(opts, None, model)
    if opts.recipe == "authors" and getattr(cls, "AUTHORS_RECIPE", None) is None:
        raise MsabenchError(f"model {model}: recipe=authors: no authors' recipe is known for it (lnln, almt, "
                            "cenet and tetfn have one)")
    return opts


def check_selection(opts: Options, kind: str | None, model: str) -> None:
    """selection_metric names a metric of the data's family exactly when selection is on test."""
    from msabench import metrics

    names = metrics.METRICS[kind] if kind else tuple(dict.fromkeys(m for ms in metrics.METRICS.values() for m in ms))
    if opts.selection == "valid" and opts.selection_metric:
        raise MsabenchError(f"model {model}: selection_metric={opts.selection_metric!r} needs "
                            "selection=test-per-metric (validation selection is on MAE)")
    if opts.selection == "test-per-metric" and opts.selection_metric not in names:
        raise MsabenchError(f"model {model}: selection=test-per-metric needs selection_metric, one of "
                            f"{', '.join(names)}; got {opts.selection_metric!r}")


def check_options(opts: Options, info: DatasetInfo, gpus: int | None, model: str) -> None:
    """What can be told before any work: the text input fits the data, the encoder is here, the device exists."""
    text_input(info, opts, model)
    check_selection(opts, info.kind, model)
    if encoder_spec(opts) is not None:
        pretrained.folder(encoder_spec(opts), f"model {model}: text_encoder={opts.text_encoder}"
                          + (" (bert_path=FOLDER)" if opts.text_encoder == "bert" else ""))
    devices.check(opts.device, opts.precision, opts.threads, gpus, where=f"model {model}")


def text_input(info: DatasetInfo, opts: Options, model: str = "model") -> str:
    """'ids' or 'features': `auto` prefers precomputed features unless a BERT encoder needs ids."""
    want = "features" if opts.text_input == "clean_features" else opts.text_input
    if want == "auto":
        want = "ids" if encoder_spec(opts) is not None or not info.text_feature_dim else "features"
    if encoder_spec(opts) is not None and want != "ids":
        raise MsabenchError(f"model {model}: text_encoder={opts.text_encoder} reads token ids; "
                            f"text_input={opts.text_input} contradicts it")
    if want == "ids" and not info.has_text_ids:
        raise MsabenchError(f"model {model}: text_input={opts.text_input} needs token ids, but {info.name} "
                            f"{info.variant} has only token features")
    if want == "features" and not info.text_feature_dim:
        raise MsabenchError(f"model {model}: text_input=features, but {info.name} {info.variant} has no token "
                            "features (MMSA key 'text')")
    return want


def text_read(info: DatasetInfo, opts: Options) -> str:
    """What the model reads as text on `info`: 'ids', 'features', or 'clean_features' (features it was
    told may carry the clean transcript's context: `executors` lets only these run under token drops)."""
    got = text_input(info, opts)
    return "clean_features" if got == "features" and opts.text_input == "clean_features" else got


class Output(NamedTuple):
    pred: torch.Tensor  # [B]
    aux: dict  # name -> scalar loss added to the L1 loss during training


def rows_differ(a: dict, b: dict) -> torch.Tensor:
    """[B] bool: rows where any input tensor of the two views (clean, corrupted) differs."""
    out = None
    for k, v in a.items():
        d = (v != b[k]).reshape(v.shape[0], -1).any(1)
        out = d if out is None else out | d
    return out


def masked_mean(seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    w = valid.unsqueeze(-1).to(seq.dtype)
    return (seq * w).sum(1) / w.sum(1).clamp(min=1.0)


def padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """Padding mask for attention; a row with nothing valid attends to position 0 (no NaN)."""
    keep = valid.clone()
    keep[~keep.any(1), 0] = True
    return ~keep


def transformer_encoder(hidden: int, dropout: float, layers: int = 1) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(hidden, 4, 2 * hidden, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def encoder_spec(opts: Options) -> str | None:
    """The pretrained text encoder an options set asks for ("minilm", a folder), or None (scratch)."""
    return {"bert": opts.bert_path, "minilm": pretrained.MINILM}.get(opts.text_encoder)


def frozen(opts: Options) -> bool:
    return opts.text_train == "frozen" or (opts.text_train == "auto" and opts.text_encoder == "minilm")


class FrozenEncoder:
    """A pretrained encoder used as a fixed feature extractor, kept out of the net's parameters.

    Not an nn.Module on purpose: its weights stay out of checkpoints (they are the package's),
    of the optimiser and of the net's dtype and device moves. Each input row is encoded at its own
    length (up to its last attended token; states after it are zero), so a state never depends on
    how far its batch was padded, and MOSI's transcripts (15 of 50 tokens on average) cost a third
    of a padded pass. States are computed without gradients, in eval mode, once per distinct input
    and kept in a process-wide cache shared by epochs, seeds and models (`cache_bytes`).
    """

    def __init__(self, spec: str):
        self.spec = spec
        # from config.json: no weights loaded until first used (a folder without one: the load says why)
        self.hidden_size = int(pretrained.config(spec).get("hidden_size")
                               or _frozen_encoder(spec, "cpu", torch.float32).config.hidden_size)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        dtype = torch.float64 if dtype == torch.float64 else torch.float32
        device = ids.device
        ids_np, mask_np = ids.detach().cpu().numpy().astype(np.int64), mask.detach().cpu().numpy().astype(np.int64)
        attended = mask_np != 0
        lengths = np.where(attended.any(1), ids_np.shape[1] - np.argmax(attended[:, ::-1], 1), 1)
        keys = [(self.spec, str(device), dtype, ids_np[i, :n].tobytes() + mask_np[i, :n].tobytes())
                for i, n in enumerate(lengths)]
        found = {}
        for k in keys:  # hits first become the most recent, so the new states below cannot evict them
            if k in _STATES:
                _STATES.move_to_end(k)
                found[k] = _STATES[k]
        todo = {}
        for i, k in enumerate(keys):
            if k not in found:
                todo.setdefault(int(lengths[i]), {}).setdefault(k, i)  # distinct inputs, grouped by length
        for n, rows in sorted(todo.items()):
            at = torch.tensor(list(rows.values()), device=device)
            encoder = _frozen_encoder(self.spec, str(device), dtype)
            with torch.no_grad(), torch.autocast(device.type, enabled=False):
                states = encoder(input_ids=ids[at, :n], attention_mask=mask[at, :n]).last_hidden_state
            for j, k in enumerate(rows):
                found[k] = states[j].clone()
                _remember(k, found[k])
        out = torch.zeros(len(keys), ids.shape[1], self.hidden_size, dtype=dtype, device=device)
        for i, k in enumerate(keys):
            out[i, :lengths[i]] = found[k]
        return out


STATE_CACHE_BYTES = 1 << 30  # default: about 45,000 MiniLM inputs of MOSI's mean length in float32
_STATES: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_STATE_BYTES = [0]
_ENCODERS: dict[tuple, nn.Module] = {}


def cache_bytes() -> int:
    """The state cache's bound: $MSABENCH_STATE_CACHE_GB (a whole protocol's masked inputs for
    several models in one process fit in a few GB), else STATE_CACHE_BYTES."""
    text = os.environ.get("MSABENCH_STATE_CACHE_GB")
    if not text:
        return STATE_CACHE_BYTES
    try:
        gb = float(text)
        if not gb >= 0:
            raise ValueError
    except ValueError:
        raise MsabenchError(f"MSABENCH_STATE_CACHE_GB must be a number of GB >= 0, got {text!r}") from None
    return int(gb * 2**30)


def _remember(key: tuple, states: torch.Tensor) -> None:
    _STATES[key] = states
    _STATE_BYTES[0] += states.numel() * states.element_size()
    limit = cache_bytes()
    while _STATE_BYTES[0] > limit and len(_STATES) > 1:
        _, old = _STATES.popitem(last=False)
        _STATE_BYTES[0] -= old.numel() * old.element_size()


def _frozen_encoder(spec: str, device: str, dtype: torch.dtype) -> nn.Module:
    key = (spec, device, dtype)
    if key not in _ENCODERS:
        encoder = pretrained.load_encoder(spec, "frozen text encoder").to(device=device, dtype=dtype).eval()
        encoder.requires_grad_(False)
        _ENCODERS[key] = encoder
    return _ENCODERS[key]


class TextEncoder(nn.Module):
    """Token ids (embeddings from scratch, or a pretrained encoder, fine-tuned or frozen) or token
    features -> [B, L, H]."""

    def __init__(self, info: DatasetInfo, opts: Options):
        super().__init__()
        h = opts.hidden
        self.use_ids, self.bert, self.frozen = text_input(info, opts) == "ids", None, None
        spec = encoder_spec(opts)
        if self.use_ids and spec is not None and frozen(opts):
            self.frozen = FrozenEncoder(spec)
            self.proj = nn.Linear(self.frozen.hidden_size, h)
        elif self.use_ids and spec is not None:
            self.bert = pretrained.load_encoder(spec, f"text_encoder={opts.text_encoder}")
            self.proj = nn.Linear(self.bert.config.hidden_size, h)
        elif self.use_ids:
            self.embed = nn.Embedding(VOCAB, h, padding_idx=0)
        else:
            self.proj = nn.Linear(info.text_feature_dim, h)
        self.pos = nn.Parameter(torch.zeros(info.text_len, h))
        self.encoder = transformer_encoder(h, opts.dropout)

    def forward(self, x: dict) -> tuple[torch.Tensor, torch.Tensor]:
        valid = x["text_mask"] > 0
        if self.frozen is not None:
            states = self.frozen(x["text_ids"], x["text_mask"], self.proj.weight.dtype)
            seq = self.proj(states.to(self.proj.weight.dtype))
        elif self.bert is not None:
            states = self.bert(input_ids=x["text_ids"], attention_mask=x["text_mask"]).last_hidden_state
            seq = self.proj(states.to(self.proj.weight.dtype))
        elif self.use_ids:
            seq = self.embed(x["text_ids"].clamp(0, VOCAB - 1))
        else:
            seq = self.proj(x["text_features"])
        seq = self.encoder(seq + self.pos, src_key_padding_mask=padding_mask(valid))
        return seq, valid


class FrameEncoder(nn.Module):
    """Audio or vision frames [B, T, D] with lengths -> [B, T, H], padding respected."""

    def __init__(self, dim: int, length: int, opts: Options):
        super().__init__()
        self.proj = nn.Linear(dim, opts.hidden)
        self.pos = nn.Parameter(torch.zeros(length, opts.hidden))
        self.encoder = transformer_encoder(opts.hidden, opts.dropout)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        seq = self.encoder(self.proj(frames) + self.pos, src_key_padding_mask=padding_mask(valid))
        return seq, valid


class Encoders(nn.Module):
    """The three unimodal encoders most models start from."""

    def __init__(self, info: DatasetInfo, opts: Options):
        super().__init__()
        self.text = TextEncoder(info, opts)
        self.audio = FrameEncoder(info.audio_dim, info.audio_len, opts)
        self.vision = FrameEncoder(info.vision_dim, info.vision_len, opts)

    def forward(self, x: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {"T": self.text(x), "A": self.audio(x["audio"], x["audio_lengths"]),
                "V": self.vision(x["vision"], x["vision_lengths"])}


def mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))


class Float32Linear(nn.Linear):
    """A linear layer outside bf16 autocast: scores keep float32 resolution (bf16 has 8 bits, so a
    prediction of 2.5 would move in steps of 0.016). Same parameters as nn.Linear; no-op in fp32/fp64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.to(self.weight.dtype))


def head(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """An MLP whose output layer computes in float32: for predictions and other scores."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), Float32Linear(hidden, d_out))


class BaselineNet(nn.Module):
    """forward(x) -> Output(pred, aux). Override `loss_parts` to add losses or use the clean view."""

    task_loss = "l1"  # the recipe's task loss, set by TorchBaseline ("l1" or "mse")

    def parameter_group(self, name: str) -> str | None:
        """The recipe group (`training.Recipe.groups`) the parameter `name` belongs to; None: none of its own
        (the recipe's `lr`, or `bert_lr` for a pretrained text encoder)."""
        return None

    def loss_parts(self, clean: dict, corrupted: dict, y: torch.Tensor) -> dict:
        """Named, already weighted training losses on one batch; their sum is minimised."""
        out = self(corrupted)
        return {**self.task(out.pred, y), **out.aux}

    def task(self, pred: torch.Tensor, y: torch.Tensor) -> dict:
        if self.task_loss == "mse":
            return {"mse": nn.functional.mse_loss(pred, y)}
        return {"l1": nn.functional.l1_loss(pred, y)}

    def training_loss(self, clean: dict, corrupted: dict, y: torch.Tensor):
        parts = self.loss_parts(clean, corrupted, y)
        return sum(parts.values()), {k: v.detach() for k, v in parts.items()}


def cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu() for k, v in state.items()}


def code_hash(*files: Path) -> str:
    """The shared torch code (this file, training.py, attention.py: the ALMT/LNLN blocks) and a model's own files."""
    h = hashlib.sha256()
    shared = (Path(__file__), Path(training.__file__), Path(attention.__file__))
    for f in (*shared, *files):
        h.update(f.read_bytes())
    return h.hexdigest()


class TorchBaseline:
    """Base class of the bundled torch models: fit with the shared recipe, cached; predict on the job's device."""

    name = "baseline"
    Options = Options

    def __init__(self, info: DatasetInfo, options=None, log=None):
        self.info = info
        self.options = options if options is not None else self.Options()
        self.net: BaselineNet | None = None
        self._eval_net: BaselineNet | None = None
        self._compute: devices.Compute | None = None
        self.log = log or training.log_to_stderr(f"[{self.name}] ")
        self.history: list[dict] = []

    def make_net(self) -> BaselineNet:
        raise NotImplementedError

    @property
    def compute(self) -> devices.Compute:
        """The placement, resolved on first use in the process that runs the job."""
        if self._compute is None:
            o = self.options
            self._compute = devices.resolve(o.device, o.precision, o.threads, where=f"model {self.name}")
        return self._compute

    def describe_compute(self) -> dict:
        return self.compute.describe()

    @property
    def selects_on_test(self) -> bool:
        """The harness hands `fit` the test split only to a model that says so (and marks its results)."""
        return self.options.selection == "test-per-metric"

    def recipe(self) -> training.Recipe:
        """The shared recipe from the options, or (recipe=authors) the authors' (`AUTHORS_RECIPE` of the options)."""
        o = self.options
        if o.recipe == "authors":
            return dataclasses.replace(type(o).AUTHORS_RECIPE, input_noise=o.input_noise)
        return training.Recipe(epochs=o.epochs, lr=o.lr, batch_size=o.batch_size, patience=o.patience,
                               augment=o.augment, input_noise=o.input_noise, bert_lr=o.bert_lr)

    def checkpoint_path(self, train: Split, valid: Split, seed: int, test: Split | None = None,
                        options: Options | None = None) -> tuple[Path, dict]:
        chosen = options or self.options
        on_test = chosen.selection == "test-per-metric"
        options = {k: v for k, v in dataclasses.asdict(chosen).items() if k not in PLACEMENT}
        meta = {
            "model": self.name,
            "options": options,
            "recipe": dataclasses.asdict(self.recipe()),
            "data": training.data_fingerprint(train, valid),
            "info": dataclasses.asdict(self.info),
            "seed": seed,
            "compute": self.compute.identity(),
            "msabench": __version__,
            "code": code_hash(Path(inspect.getfile(type(self)))),
        }
        if encoder_spec(self.options) is not None and text_input(self.info, self.options) == "ids":
            meta["text_encoder_weights"] = pretrained.identity(encoder_spec(self.options))
        if on_test:  # these weights depend on the test split too
            if test is None:
                raise MsabenchError(f"model {self.name}: selection=test-per-metric needs the test split")
            meta["test_data"] = training.data_fingerprint(test)
        fp = training.fingerprint(**meta)
        meta["fingerprint"] = fp
        return training.cache_dir() / self.name / f"{fp}.pt", meta

    def fit(self, train: Split, valid: Split, seed: int, test: Split | None = None) -> None:
        compute = self.compute
        spec = encoder_spec(self.options)
        if spec is not None and text_input(self.info, self.options) == "ids":  # ids another tokenizer made: now
            pretrained.folder(spec, f"text_encoder={self.options.text_encoder}")
            for split in (train, valid):
                pretrained.check_ids(split.text_ids, spec, f"model {self.name}: {split.name} split")
        path, meta = self.checkpoint_path(train, valid, seed, test)
        given = self.options.checkpoint.replace("{seed}", str(seed))
        with devices.threads(compute.threads):
            training.seed_all(seed)
            self.net = self.make_net()
            self.net.task_loss = self.recipe().loss
            if given:  # trained elsewhere (another device, precision or thread count): all else must match
                expect = {k: v for k, v in meta.items() if k not in ("compute", "fingerprint")}
                self.net.load_state_dict(training.load_checkpoint(Path(given), expect))
                self.log(f"seed {seed}: loaded checkpoint {given}")
            elif path.exists():
                try:
                    state = training.load_checkpoint(path, {"fingerprint": meta["fingerprint"], "info": meta["info"]})
                    self.net.load_state_dict(state)
                    self.log(f"seed {seed}: loaded checkpoint {path}")
                except (MsabenchError, RuntimeError) as e:
                    self.log(f"seed {seed}: {e}; retraining")
                    path.unlink(missing_ok=True)
                    return self.fit(train, valid, seed, test)
            else:
                self.log(f"seed {seed}: training on {len(train)} samples (selection on {len(valid)} valid) "
                         f"on {compute.device} ({compute.precision}, {compute.threads} CPU thread(s))")
                watch = training.TestSelection(test, self.info.kind) if self.selects_on_test else None
                self.history = training.fit(self.net, train, valid, seed, self.recipe(), compute=compute,
                                            log=lambda m: self.log(f"seed {seed}: {m}"), test_selection=watch)
                if watch is None:
                    training.save_checkpoint(path, cpu_state(self.net.state_dict()), meta)
                else:  # one run, one checkpoint per metric: the other metrics' variants load theirs
                    # Watching changes nothing in training (TestSelection), so the net as fit leaves it is the
                    # validation-selected run's: saved under selection=valid, that variant loads it too
                    v_path, v_meta = self.checkpoint_path(
                        train, valid, seed, None, dataclasses.replace(self.options, selection="valid",
                                                                      selection_metric=""))
                    training.save_checkpoint(v_path, cpu_state(self.net.state_dict()), v_meta)
                    for metric, state in watch.states.items():
                        m_path, m_meta = self.checkpoint_path(
                            train, valid, seed, test, dataclasses.replace(self.options, selection_metric=metric))
                        training.save_checkpoint(m_path, cpu_state(state), m_meta)
                    self.net.load_state_dict(watch.states[self.options.selection_metric])
                    self.log(f"seed {seed}: kept epoch {watch.epoch[self.options.selection_metric]}, best "
                             f"{self.options.selection_metric} on TEST at r = {training.TEST_SELECTION_RATE} "
                             "(selection=test-per-metric: a protocol flaw, reproduced to measure it)")
            self.net.to(compute.device).eval()
        self._eval_net = None

    def predict(self, batch: Batch, mask: Mask) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        compute = self.compute
        with torch.no_grad(), devices.threads(compute.threads):
            if compute.exact:  # float64 copy: scores independent of the batch they come in
                if self._eval_net is None:
                    self._eval_net = copy.deepcopy(self.net).double().eval()
                out = self._eval_net(training.tensors(batch, torch.float64)).pred
            else:
                with compute.autocast():
                    out = self.net(training.tensors(batch, device=compute.device)).pred
        return out.float().cpu().double().numpy()
