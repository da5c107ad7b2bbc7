"""`mmsa:MODEL`: a model of the MMSA package (PyPI `mmsa` 2.2.1, MIT; `pip install 'msabench[mmsa]'`),
run under msabench's protocols like any submission.

What is MMSA's and what is ours:
- MMSA's: the model class (through its `AMIO` wrapper, so MMSA's own alignment sub-network is used
  where its config asks for it), its per-dataset hyper-parameters (`get_config_regression(model,
  dataset)` from the config JSON shipped in the package: "mosi" for MOSI-kind data, "sims" for SIMS),
  and its trainer for that model (`ATIO().getTrain(args).do_train`), which keeps the checkpoint with
  the best validation score (MMSA's KeyEval, the L1 loss) and stops after MMSA's `early_stop` epochs
  without improvement. Audio and vision are averaged over time for the models whose config says
  `need_normalized`, as MMSA's data loader does (a mean over the whole padded length).
- Ours: the batches. msabench's clean train and valid splits are fed in MMSA's batch format
  (`text` token features, `audio`, `vision`, their lengths, `labels['M']`, `index`, `id`); the
  trainer's `test` loader is the validation split again, so no test sample ever reaches training
  (some MMSA trainers evaluate `dataloader['test']` when asked for per-epoch results). `feature_dims`
  and `seq_lens` come from the data. Evaluation is msabench's: corrupted batches through the model's
  forward pass (`predict`), one score per sample.

Models run here: tfn, lmf, lf_dnn, mult (any data with token features; mult's convolutions need
sequences of at least its kernel size), and mfn, ef_lstm, graph_mfn,
mfm (MMSA marks them `need_data_aligned`: all three sequences one length, e.g. aligned_50 or
utterance-level tables); self_mm, mmim and misa read token ids through MMSA's BertTextEncoder, built
from a local folder (`text_encoder=minilm`, the packaged MiniLM, by default, or `text_encoder=DIR`):
ours is pointing MMSA's `pretrained` at that folder and setting the text width it implies
(`feature_dims[0]`, and Self-MM's `text_out`, 768 in MMSA's config for bert-base; MISA's text
projection, a Linear from a width of 768 fixed in its code, is rebuilt from the folder's width; its
code reads audio and vision up to each sample's text length, so data with shorter audio or vision,
e.g. utterance-level tables, is refused).
mlf_dnn, mtfn and mlmf (MMSA's multi-task models, SIMS config only) train on the unimodal labels too (`labels['T'|'A'|'V']`, from CH-SIMS's
regression_labels_T/A/V); data without them is refused.

Three models need more of ours, each change to how they are called or built, none to what they compute:
- bert_mag: MMSA 2.2.1's MAG-BERT class loads BERT by a fixed name ('bert-base-uncased') and predates
  transformers 5 (no `post_init`, and it calls the BERT helpers `get_extended_attention_mask` and
  `get_head_mask` that transformers 5 removed). While it is built, the name reads the local folder, its
  class runs `post_init` after MMSA's `__init__`, and the two helpers are given back as transformers 4
  defined them (the additive attention mask (1 - mask) * min-float; no head mask). MAG adds audio and
  vision to the token embeddings, so MMSA's config asks for aligned data (and aligns by average pooling).
- tfr_net: TFR-Net learns to reconstruct what is missing, so MMSA's loader gives it, besides the clean
  inputs, a corrupted copy of each (`text_m`: dropped tokens [UNK] with [CLS]/[SEP] kept; `audio_m`,
  `vision_m`: dropped frames zeroed) and the masks, drawn once per split at MMSA's `missing_rate` with
  `np.random.seed(missing_seed)` (`data_loader.generate_m`). Ours: the same draw, on msabench's train
  and valid splits, at `missing_rate` (an option, 0.5 by default: the middle of LNLN's r = 0.0..0.9;
  MMSA's config leaves the rate to its user) with the training seed (+1 for audio, +2 for vision, so the
  three masks are independent) as `missing_seed`. At evaluation the corrupted test batch is its `_m`
  input; its prediction reads only that and the clean attention mask and lengths (the clean inputs and
  the missing masks feed only its reconstruction loss, which is discarded). It also loads BERT by the
  fixed name (pointed at the folder as for bert_mag), and its temporal attention has 25 heads over
  each sequence, so every length must be a multiple of 25 (MOSI's 50/375/500 are).
- mctn: its seq2seq puts every output on 'cuda' (set to the job's device here), its width is MMSA's
  768 (BERT features; set to the data's text width, audio and vision zero-padded to it as MMSA pads
  them). MMSA 2.2.1's MCTN feeds batch-first tensors to LSTMs that are not batch-first: every LSTM of it
  runs over the samples of a batch, not over time, so a sample's prediction depends on the other samples
  of its batch. msabench runs it as MMSA does, and predicts in MMSA's batches (its config's 32, in the
  test split's order, as MMSA's test loader): its predictions are reproducible for a given --batch-size
  that is a multiple of 32 (the default 64 is), and change with other cuts. Its prediction reads only
  the text (the translations to vision and audio feed its losses), as MCTN's design intends at test time.

On a GPU (`device=auto` finds it): float32 as MMSA, no TF32, deterministic kernels where torch has them
and the math attention kernel in training, as for the bundled models; an op with no deterministic kernel
warns instead of failing (the code is MMSA's, not ours) and is named in the manifest
(`compute.nondeterministic_ops`). Lengths stay on the CPU, where MMSA's trainers leave them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import io
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from msabench import devices
from msabench.errors import MsabenchError

FEATURE_MODELS = ("tfn", "lmf", "lf_dnn", "mult", "mfn", "ef_lstm", "graph_mfn", "mfm", "mctn")
# read token ids through a BERT-family encoder
BERT_MODELS = ("self_mm", "mmim", "misa", "bert_mag", "tfr_net")
UNIMODAL_MODELS = ("mlf_dnn", "mtfn", "mlmf")  # token features, and T/A/V labels in training (SIMS)
MODELS = FEATURE_MODELS + BERT_MODELS + UNIMODAL_MODELS
LENGTHS_IN_CALL = ("self_mm", "mmim")  # called as model(text, (audio, lengths), (vision, lengths))
CLEAN = "clean_features"  # text_encoder for feature models: the data's token features, context and all
UNK = 100  # bert-base-uncased's [UNK], MMSA's missing token (and msabench's)
INSTALL = "pip install 'msabench[mmsa]' (the MMSA package, mmsa==2.2.1)"


@dataclass(frozen=True)
class Options:
    model: str = ""  # an MMSA model name, e.g. lf_dnn
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads; 0: the job's
    # BERT models: minilm (the packaged MiniLM) or a local BERT-family folder. Feature models read the data's
    # token features; `clean_features` says so explicitly, which lets them run where text tokens are dropped
    # although the features carry the clean transcript's context (`text_read`)
    text_encoder: str = "minilm"
    missing_rate: float = 0.5  # tfr_net: the drop rate of its training corruption (MMSA's missing_rate)

    def text_read(self, info) -> str:
        """'ids' (BERT models), 'features', or 'clean_features' (feature models told so)."""
        if self.model in BERT_MODELS:
            return "ids"
        return "clean_features" if self.text_encoder == CLEAN else "features"

    def clean_text_advice(self) -> str:
        """What to do instead of reading clean-context token features where text tokens are dropped."""
        return (f"MMSA's {self.model} reads nothing else; one of MMSA's models that encode the ids "
                f"({', '.join(BERT_MODELS)}) does, or pass text_encoder={CLEAN} to run on them anyway, labelled as such")

    def check(self, info, gpus: int | None, name: str) -> None:
        """Before any work: the package is here, the model runs here, the data has what it reads."""
        mmsa_package(name)
        if self.text_encoder == CLEAN and self.model in BERT_MODELS:
            raise MsabenchError(f"model {name}: text_encoder={CLEAN} is for MMSA's feature models; {self.model} "
                                "encodes token ids with its BERT (text_encoder=minilm or a folder)")
        if self.model in BERT_MODELS:
            from msabench.data import pretrained

            pretrained.folder(self.text_encoder, f"model {name}: text_encoder={self.text_encoder}")
            if not info.has_text_ids:
                raise MsabenchError(f"model {name}: MMSA's {self.model} reads token ids through its BERT encoder; "
                                    f"{info.name} {info.variant} has none (use a tokens variant)")
        elif self.model in UNIMODAL_MODELS and not info.unimodal_labels:
            raise MsabenchError(f"model {name}: MMSA's {self.model} trains on unimodal labels too (T, A and V, as "
                                f"CH-SIMS's regression_labels_T/A/V); {info.name} {info.variant} has none")
        if self.model not in BERT_MODELS and not info.text_feature_dim:
            raise MsabenchError(f"model {name}: MMSA's {self.model} reads token features (MMSA's 'text'); "
                                f"{info.name} {info.variant} has token ids only (use a features variant, or "
                                "msabench data embed)")
        config = _config(self.model, info)
        kernels = [config.get(f"conv1d_kernel_size_{m}", 1) for m in "lav"]  # MulT's temporal convolutions
        if any(k > n for k, n in zip(kernels, (info.text_len, info.audio_len, info.vision_len))):
            raise MsabenchError(f"model {name}: MMSA's {self.model} convolves each sequence over {max(kernels)} steps "
                                f"(its config); {info.name} {info.variant} has sequences of length {info.text_len}, "
                                f"{info.audio_len}, {info.vision_len}")
        if config["need_data_aligned"] and not info.text_len == info.audio_len == info.vision_len:
            raise MsabenchError(f"model {name}: MMSA's {self.model} needs aligned data (one length for text, audio "
                                f"and vision); {info.name} {info.variant} has {info.text_len}, {info.audio_len}, "
                                f"{info.vision_len}")
        if self.model == "tfr_net":
            heads = int(config["num_temporal_head"])
            if any(n % heads for n in (info.text_len, info.audio_len, info.vision_len)):
                raise MsabenchError(f"model {name}: MMSA's tfr_net attends over time with {heads} heads (its config), "
                                    f"so every sequence length must be a multiple of {heads}; {info.name} "
                                    f"{info.variant} has {info.text_len}, {info.audio_len}, {info.vision_len}")
        if self.model == "misa" and min(info.audio_len, info.vision_len) < info.text_len:
            raise MsabenchError(f"model {name}: MMSA's misa reads audio and vision up to each sample's text length "
                                f"(its code packs them with the tokens' lengths), so they must be at least as long as "
                                f"the text; {info.name} {info.variant} has {info.text_len}, {info.audio_len}, "
                                f"{info.vision_len}")
        if self.model == "mctn" and min(info.text_len, config["max_seq_len"]) < 2:
            raise MsabenchError(f"model {name}: MMSA's mctn needs sequences of at least 2 steps (its decoder squeezes "
                                f"away a length-1 axis); {info.name} {info.variant} has length {info.text_len}")
        if self.model == "mctn" and max(info.audio_dim, info.vision_dim) > info.text_feature_dim:
            raise MsabenchError(f"model {name}: MMSA's mctn translates text into vision and audio padded to the text's "
                                f"width; {info.name} {info.variant} has text {info.text_feature_dim}-d, audio "
                                f"{info.audio_dim}-d, vision {info.vision_dim}-d (audio and vision must not be wider)")
        devices.check(self.device, "fp32", self.threads, gpus, where=f"model {name}")


OPTIONS = Options
VERSION = 1  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = {"tfn": "TFN", "lmf": "LMF", "lf_dnn": "LF-DNN", "mult": "MulT", "mfn": "MFN", "ef_lstm": "EF-LSTM",
           "graph_mfn": "Graph-MFN", "mfm": "MFM", "mctn": "MCTN", "self_mm": "Self-MM", "mmim": "MMIM", "misa": "MISA",
           "bert_mag": "BERT-MAG", "tfr_net": "TFR-Net", "mlf_dnn": "MLF-DNN", "mtfn": "MTFN", "mlmf": "MLMF"}


def parse_options(raw: dict[str, str], model: str) -> Options:
    """`model` must be one MMSA model msabench runs; `device` and `threads` as for the other models."""
    known = {f.name for f in fields(Options)}
    for key in raw:
        if key not in known:
            raise MsabenchError(f"model {model} has no option {key!r}; options: model (an MMSA model), device, threads, "
                                "text_encoder (BERT models: minilm or a folder; feature models: clean_features), missing_rate (tfr_net)")
    name = raw.get("model", "").strip().lower()
    if name not in MODELS:
        raise MsabenchError(f"model {model}: {name or 'no MMSA model'!r} is not an MMSA model msabench runs; "
                            f"write mmsa:MODEL with MODEL one of {', '.join(MODELS)}")
    try:
        threads = int(raw.get("threads", 0))
    except ValueError:
        raise MsabenchError(f"model {model}: option threads={raw['threads']!r} is not an int") from None
    rate = Options.missing_rate
    if "missing_rate" in raw:
        if name != "tfr_net":
            raise MsabenchError(f"model {model}: option missing_rate is tfr_net's (its training corruption); "
                                f"MMSA's {name} has none")
        try:
            rate = float(raw["missing_rate"])
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate < 1.0:
            raise MsabenchError(f"model {model}: option missing_rate={raw['missing_rate']!r} must be a number in [0, 1)")
    opts = Options(model=name, device=raw.get("device", "auto"), threads=threads,
                   text_encoder=raw.get("text_encoder", "minilm"), missing_rate=rate)
    devices.check(opts.device, "fp32", opts.threads, where=f"model {model}")
    return opts


def mmsa_package(where: str = "mmsa"):
    try:
        import MMSA
    except ImportError:
        raise MsabenchError(f"{where} needs the MMSA package: {INSTALL}") from None
    return MMSA


def _config(model: str, info) -> dict:
    """MMSA's regression config for `model` on this kind of data (its own JSON), as a plain dict."""
    from MMSA.config import get_config_regression

    return dict(get_config_regression(model, "sims" if info.kind == "sims" else "mosi"))


LOG_BUG = " {dict_to_str(train_results)}"  # MMSA 2.2.1's multi-task trainers log this before assigning it


def _adapt(trainer, mend_log: bool = False) -> None:
    """Changes to the trainer, none to what it computes: its per-epoch tqdm bars are silenced; its
    ReduceLROnPlateau drops `verbose`, which torch 2.7 removed (MMSA 2.2.1 predates it); and where its
    first log line reads `train_results` before it exists (MLF_DNN, MTFN, MLMF: an UnboundLocalError in
    the first epoch of every run), `do_train` is recompiled from MMSA's source without that part of the line."""
    import functools
    import inspect
    import sys
    import textwrap
    import types

    from torch.optim.lr_scheduler import ReduceLROnPlateau
    from tqdm import tqdm

    class Plateau(ReduceLROnPlateau):
        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    module = sys.modules[type(trainer).__module__]
    if getattr(module, "tqdm", None) is tqdm:
        module.tqdm = functools.partial(tqdm, disable=True)
    if getattr(module, "ReduceLROnPlateau", None) is ReduceLROnPlateau:
        module.ReduceLROnPlateau = Plateau
    if not mend_log or getattr(trainer.do_train, "__func__", None) is not type(trainer).do_train:
        return  # only the multi-task trainers need it (others log train_results after assigning it)
    source = textwrap.dedent(inspect.getsource(type(trainer).do_train))
    if LOG_BUG in source:
        namespace: dict = {}
        exec(compile(source.replace(LOG_BUG, ""), inspect.getsourcefile(type(trainer)), "exec"), module.__dict__,
             namespace)
        trainer.do_train = types.MethodType(namespace["do_train"], trainer)


@functools.cache
def _mag_classes(folder: str):
    """MMSA's MAG-BERT classes made loadable under transformers 5, reading BERT from `folder` (see the
    module docstring); one pair per folder, so no class carries state that a later build changes."""
    import torch

    module = importlib.import_module("MMSA.models.singleTask.BERT_MAG")

    class MAGBertModel(module.MAG_BertModel):
        def get_extended_attention_mask(self, attention_mask, input_shape=None, device=None):
            return (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min

        def get_head_mask(self, head_mask, num_hidden_layers):
            return None

    class MAGBert(module.MAG_BertForSequenceClassification):
        def __init__(self, config, args):
            super().__init__(config, args)
            self.post_init()  # what transformers 5's from_pretrained expects of every model class

        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            return super().from_pretrained(folder, *args, **kwargs)

    return module, MAGBertModel, MAGBert


@contextlib.contextmanager
def _bert_from(model: str, folder: str):
    """While `model` is built, MMSA's fixed BERT name reads `folder` (bert_mag, tfr_net; the other BERT
    models take MMSA's `pretrained` argument)."""
    saved = []

    def patch(module, name, value):
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    try:
        if model == "bert_mag":
            module, inner, outer = _mag_classes(folder)
            patch(module, "MAG_BertModel", inner)
            patch(module, "MAG_BertForSequenceClassification", outer)
        elif model == "tfr_net":
            module = importlib.import_module("MMSA.models.missingTask.TFR_NET.model")
            patch(module, "BertTextEncoder", functools.partial(module.BertTextEncoder, pretrained=folder))
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


def _drop(mask: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """MMSA's `generate_m` draw: a position stays with probability 1 - rate (np.random.seed(seed))."""
    return (np.random.RandomState(seed).uniform(size=mask.shape) > rate) * mask


def on_device(inputs: dict, device) -> dict:
    """Inputs on the model's device, lengths left on the CPU as MMSA's trainers leave them: MMIM's and
    Self-MM's encoders pass them to pack_padded_sequence, which takes CPU lengths only (on a GPU, moving
    them failed every MMIM prediction)."""
    return {k: v if k.endswith("_lengths") else v.to(device) for k, v in inputs.items()}


def _frames(lengths, steps: int) -> np.ndarray:
    return (np.arange(steps)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


class MMSAModel:
    """An MMSA model trained by MMSA's trainer on msabench's train/valid splits."""

    def __init__(self, info, options: Options):
        self.info, self.options = info, options
        self.net = None
        self.args = None
        self.compute = None
        self.nondeterministic: set[str] = set()  # torch's ops without a deterministic kernel that ran (CUDA)

    def _args(self, compute) -> dict:
        from easydict import EasyDict

        info = self.info
        args = EasyDict(_config(self.options.model, info))
        args.update(train_mode="regression", device=compute.device, cur_seed=1,
                    feature_dims=[info.text_feature_dim, info.audio_dim, info.vision_dim],
                    seq_lens=[info.text_len, info.audio_len, info.vision_len],
                    custom_feature=None, feature_T="", feature_A="", feature_V="",
                    language="cn" if info.kind == "sims" else "en")
        if self.options.model == "mctn":  # MMSA's 768 is BERT features' width; ours is the data's
            args.output_dim = info.text_feature_dim
        if self.options.model in BERT_MODELS:  # MMSA's encoder from a local folder; the widths follow it
            from msabench.data import pretrained

            width = int(pretrained.config(self.options.text_encoder)["hidden_size"])
            args.update(pretrained=str(pretrained.folder(self.options.text_encoder)), transformers="bert")
            args.feature_dims[0] = width
            if "text_out" in args and self.options.model == "self_mm":
                args.text_out = width
        return args

    def _text(self, part):
        """MMSA's text input: token features, or for BERT models `text_bert` [B, 3, L] (ids, mask, segments)."""
        if self.options.model not in BERT_MODELS:
            return part.text_features
        ids = np.asarray(part.text_ids, dtype=np.float32)
        return np.stack([ids, np.asarray(part.text_mask, dtype=np.float32), np.zeros_like(ids)], 1)

    def _inputs(self, text, audio, vision, audio_lengths, vision_lengths) -> dict:
        """Arrays -> MMSA's inputs (float32 tensors), time-averaged where MMSA's loader averages."""
        import torch

        if self.args.get("need_normalized"):
            audio, vision = audio.mean(1, keepdims=True), vision.mean(1, keepdims=True)
        out = {"text": text, "audio": audio, "vision": vision}
        out = {k: torch.from_numpy(np.nan_to_num(np.asarray(v, dtype=np.float32))) for k, v in out.items()}
        out["audio_lengths"] = torch.from_numpy(np.asarray(audio_lengths, dtype=np.int64))
        out["vision_lengths"] = torch.from_numpy(np.asarray(vision_lengths, dtype=np.int64))
        return out

    def _missing(self, text, audio, vision, audio_lengths, vision_lengths, seed: int | None) -> dict:
        """TFR-Net's extra inputs, as MMSA's loader makes them (`generate_m`): with a seed, a fresh draw at
        `missing_rate` (training); without, the inputs as given are the corrupted ones and nothing is
        marked missing (evaluation: the batch is already corrupted, and the model is not told where)."""
        import torch

        text = np.asarray(text, dtype=np.float32)
        text_mask = text[:, 1, :]
        audio_mask, vision_mask = _frames(audio_lengths, audio.shape[1]), _frames(vision_lengths, vision.shape[1])
        if seed is None:
            out = {"text_m": text, "audio_m": audio, "vision_m": vision, "text_missing_mask": text_mask,
                   "audio_missing_mask": audio_mask, "vision_missing_mask": vision_mask}
        else:
            rate = self.options.missing_rate
            keep_t = _drop(text_mask, rate, seed)
            rows, last = np.arange(len(text)), np.argmin(text_mask, axis=1) - 1
            keep_t[rows, 0] = keep_t[rows, last] = 1  # [CLS] and [SEP] stay (MMSA: argmin - 1, -1 when unpadded)
            ids_m = keep_t * text[:, 0, :] + UNK * (text_mask - keep_t)
            keep_a, keep_v = _drop(audio_mask, rate, seed + 1), _drop(vision_mask, rate, seed + 2)
            out = {"text_m": np.stack([ids_m, text_mask, text[:, 2, :]], 1), "audio_m": keep_a[..., None] * audio,
                   "vision_m": keep_v[..., None] * vision, "text_missing_mask": keep_t,
                   "audio_missing_mask": keep_a, "vision_missing_mask": keep_v}
        out.update(audio_mask=audio_mask, vision_mask=vision_mask)
        return {k: torch.from_numpy(np.nan_to_num(np.asarray(v, dtype=np.float32))) for k, v in out.items()}

    def _loader(self, split, shuffle: bool, seed: int):
        import torch

        text = self._text(split)
        inputs = self._inputs(text, split.audio, split.vision, split.audio_lengths, split.vision_lengths)
        if self.options.model == "tfr_net":
            inputs.update(self._missing(text, split.audio, split.vision, split.audio_lengths, split.vision_lengths,
                                        seed))
        labels = {"M": torch.from_numpy(np.asarray(split.labels, dtype=np.float32)).view(-1, 1)}
        if self.options.model in UNIMODAL_MODELS:  # the multi-task trainers read labels T, A and V too
            labels.update({m: torch.from_numpy(np.asarray(split.extra_labels[m], dtype=np.float32)).view(-1, 1)
                           for m in "TAV"})
        ids = [str(i) for i in split.ids]

        class Rows(torch.utils.data.Dataset):
            def __len__(self):
                return len(ids)

            def __getitem__(self, i):
                return {**{k: v[i] for k, v in inputs.items()}, "labels": {k: v[i] for k, v in labels.items()},
                        "index": i, "id": ids[i]}

        return torch.utils.data.DataLoader(Rows(), batch_size=int(self.args.batch_size), shuffle=shuffle, num_workers=0)

    def fit(self, train, valid, seed: int) -> None:
        import torch

        mmsa_package(f"mmsa:{self.options.model}")
        from MMSA.models import AMIO
        from MMSA.trains import ATIO

        self.compute = devices.resolve(self.options.device, "fp32", self.options.threads, where=f"mmsa:{self.options.model}")
        if self.compute.kind == "cuda":  # deterministic kernels where torch has them; MMSA's other ops are named
            devices.prepare(self.compute, strict=False)
        self.args = self._args(self.compute)
        self.args.train_samples = len(train)  # MMSA's config says MOSI's 1284; Self-MM sizes its label store by it
        if self.options.model in BERT_MODELS:
            from msabench.data import pretrained

            pretrained.transformers_quiet()  # quiet loads: MMSA's encoder calls from_pretrained itself
            for part in (train, valid):
                pretrained.check_ids(part.text_ids, self.options.text_encoder, f"mmsa:{self.options.model}, {part.name}")
        torch.manual_seed(seed)
        trainer = ATIO().getTrain(self.args)
        _adapt(trainer, mend_log=self.options.model in UNIMODAL_MODELS)
        folder = self.args.pretrained if self.options.model in BERT_MODELS else ""  # the local folder (_args)
        with devices.threads(self.compute.threads), tempfile.TemporaryDirectory(prefix="msabench-mmsa-") as tmp:
            self.args.model_save_path = Path(tmp) / "best.pth"
            with _bert_from(self.options.model, folder):
                net = AMIO(copy.deepcopy(self.args)).to(self.compute.device)
            if self.options.model == "mctn":  # MMSA pins its seq2seq outputs to 'cuda'
                net.Model.seq2seq1.device = net.Model.seq2seq2.device = self.compute.device
            width = self.args.feature_dims[0]
            if self.options.model == "misa" and width != 768:  # MISA's text projection reads bert-base's 768
                net.Model.project_t.project_t = torch.nn.Linear(width, int(self.args.hidden_size)).to(self.compute.device)
            loaders = {"train": self._loader(train, True, seed), "valid": self._loader(valid, False, seed)}
            loaders["test"] = loaders["valid"]  # no test sample reaches training, whatever the trainer asks for
            # on CUDA the math attention kernel, as for the bundled models: the fused kernels' backward passes
            # use atomics (MiniLM's attention in MMIM ran the memory-efficient one, non-deterministic)
            with contextlib.redirect_stdout(io.StringIO()), self._watch(), self.compute.training():
                trainer.do_train(net, loaders)  # (stdout: MCTN's trainer prints each epoch)
            net.load_state_dict(torch.load(self.args.model_save_path, map_location="cpu", weights_only=True))
        self.net = net.to(self.compute.device).eval()

    @contextlib.contextmanager
    def _watch(self):
        """Collect torch's warnings about ops with no deterministic kernel (raised as warnings on CUDA)."""
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
        for w in caught:
            text = str(w.message)
            if "does not have a deterministic implementation" in text:
                self.nondeterministic.add(text.split(" does not have")[0])
            elif "defaults to a non-deterministic algorithm" in text:  # fused attention's backward pass
                self.nondeterministic.add(text.split(" defaults to")[0])
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def describe_compute(self) -> dict:
        """The job's environment, the device MMSA's model ran on, and its ops without a deterministic kernel."""
        out = devices.job_environment()
        if self.compute is not None:
            out.update(device=self.compute.device, name=self.compute.name, precision=self.compute.precision)
        return {**out, "nondeterministic_ops": sorted(self.nondeterministic)}

    def predict(self, batch, mask) -> np.ndarray:
        if self.net is None:
            raise MsabenchError(f"mmsa:{self.options.model}: predict before fit (MMSA models are trained by msabench)")
        if self.options.model == "mctn":  # MMSA's batches: MCTN's LSTMs run across the samples of a batch
            size = int(self.args.batch_size)
            return np.concatenate([self._forward(batch.rows(slice(i, i + size))) for i in range(0, len(batch), size)])
        return self._forward(batch)

    def _forward(self, batch) -> np.ndarray:
        import torch

        text = self._text(batch)
        x = self._inputs(text, batch.audio, batch.vision, batch.audio_lengths, batch.vision_lengths)
        if self.options.model == "tfr_net":
            x.update(self._missing(text, batch.audio, batch.vision, batch.audio_lengths, batch.vision_lengths, None))
        x = on_device(x, self.compute.device)
        audio, vision = x["audio"], x["vision"]
        if self.options.model in LENGTHS_IN_CALL:
            audio, vision = (audio, x["audio_lengths"]), (vision, x["vision_lengths"])
        with devices.threads(self.compute.threads), torch.no_grad(), self._watch():
            if self.options.model == "tfr_net":
                out = self.net((x["text"], x["text_m"], x["text_missing_mask"]),
                               (audio, x["audio_m"], x["audio_mask"], x["audio_missing_mask"]),
                               (vision, x["vision_m"], x["vision_mask"], x["vision_missing_mask"]))
            elif self.options.model == "mctn":  # its call takes the label (for its loss, discarded here)
                out = self.net(x["text"], audio, vision, torch.zeros(len(batch), 1, device=audio.device), lengths=None)
            else:
                out = self.net(x["text"], audio, vision)
        if isinstance(out, dict):
            pred = out["M"]
        else:  # MFM and TFR-Net return (prediction, ...), MCTN (loss, prediction)
            pred = out[1] if self.options.model == "mctn" else out[0]
        return pred.reshape(-1).double().cpu().numpy()


def build(info, options: Options | None = None) -> MMSAModel:
    if options is None or not options.model:
        raise MsabenchError(f"model mmsa needs an MMSA model: write mmsa:MODEL with MODEL one of {', '.join(MODELS)}")
    return MMSAModel(info, options)
