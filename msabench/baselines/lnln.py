"""`lnln`: Language-dominated Noise-resistant Learning Network.

Reference: Haoyu Zhang, Wenbin Wang, Tianshu Yu, "Towards Robust Multimodal Sentiment Analysis with
Incomplete Data", NeurIPS 2024, arXiv:2409.20012. Structure as the authors' released code
(github.com/Haoyu-ha/LNLN, models/lnln.py, models/basic_layers.py, configs/train_*.yaml); the code
is msabench's own. Each part the paper ablates has a switch that removes it.

As the authors' code:
- Input construction: per modality a linear map to `hidden`, then a Transformer (`depth` 2) over
  [`tokens` (8) zero-initialised learnable tokens; the sequence] with learned positional embeddings
  (N(0, 1) init) and no padding mask; the token positions are kept: H^1_T, H^1_A, H^1_V.
- Blocks: pre-LayerNorm, a LayerNorm each for query, key and value; `heads` x `head_dim` attention
  without bias on q/k/v (inner width heads * head_dim, independent of `hidden`), output projection
  with bias; feed-forward hidden -> hidden -> hidden with GELU; no dropout anywhere (`dropout` 0).
- Completeness check (`completeness_check`): a Transformer (one extra token, `depth`) over H^1_T, its
  token -> Linear(h, h/2), LeakyReLU(0.1), Linear(h/2, 1), sigmoid: w in (0, 1), trained with MSE
  against the language completeness (`cc_weight` 0.9, the authors' alpha). w is not detached.
- Proxy dominant feature (`proxy_generation`): a Transformer (`tokens` extra tokens, `depth`) over
  [H^0_p (ones-initialised, `tokens`); H^1_A; H^1_V]; its extra-token positions, through a gradient
  reversal layer, are H_p. H_D = w * H^1_T + (1 - w) * H_p. As in the authors' code the reversal sits
  on H_p itself, so every loss that reaches the generator through H_D is reversed, the task loss too.
- Effectiveness discriminator (`adversarial`): per token, Linear(h, h/2), LeakyReLU(0.1), Linear(h/2,
  2) on the rows of [H_D; H^1_T of the complete input] with classes 1 and 0; cross-entropy, `adv_weight`
  0.8 (beta). Neither side is detached.
- DMML: a Transformer (`depth` 2, positional embeddings, no extra token) over H_D whose input and
  every layer's output are the language scales (depth + 1 = 3); adaptive hyper-modality learning, one
  layer per scale: H_hyper <- LN(H_hyper) + Out(Attn(LN(H_D^i) -> LN(H^1_A)) + Attn(LN(H_D^i) ->
  LN(H^1_V))), from a ones-initialised H_hyper^0 (the residual adds to the normalised H_hyper, as the
  authors' code does); these layers' heads split `hidden` (width hidden / heads, not `head_dim`);
  `hyper_modality` off: no such layers, the fusion reads [H^1_A; H^1_V].
- Fusion: a cross Transformer (`fusion_depth`; 0 = the authors' per dataset: 2 on MOSI, 4 on MOSEI and
  SIMS; synthetic and utterance-level data follow the dataset they stand in for) in which the last
  language scale, with a zero-initialised extra token and positional embeddings, queries the
  hyper-modality tokens (same extra token, their own positional embeddings); the prediction is a
  linear map of the mean of the outputs after the extra token.
- Reconstructor (`reconstructor`): per modality a Transformer (`depth`, positional embeddings) on
  H^1_m of the incomplete input, regressed with MSE on H^1_m of the complete input (not detached),
  `rec_weight` 0.1 (gamma). Training only.
- Training augmentation: per modality, r ~ U[0, 1) per sample and exactly half the samples (chosen
  per modality) complete (`training.augmentation(per_modality=True)`), redrawn every epoch.

Where msabench differs (each a named choice):
- Text encoder: the shared `TextEncoder` (scratch embeddings, packaged MiniLM or a local BERT, then
  one Transformer layer, with its padding mask), where the authors fine-tune BERT-base and map its
  states linearly. Scratch embeddings have no context of their own; the one layer gives them some.
- Sizes: `hidden` 64, `heads` 4 x `head_dim` 16 (the authors: 128, 8 x 64, inner width 512), for
  CPU time; `hidden=128,heads=8,head_dim=64` gives the authors' sizes (a test checks the parameter
  count against their configuration).
- Completeness target: the share of the language positions that can be dropped (not [CLS] / [SEP],
  which no masking drops, when the text has token ids) whose input the augmentation left unchanged;
  the authors regress on 1 - r, the drawn rate, of which this share is the realisation.
- Task loss MSE, as the authors' (the shared recipe's is L1); the rest of the recipe is msabench's
  shared one (AdamW lr 1e-3 with warm-up and cosine over steps, gradient clip 1, early stopping on
  validation MAE, `epochs` 18) where the authors train 200 epochs with AdamW lr 1e-4, warm-up + cosine
  over epochs, and keep the test-best checkpoint. `recipe=authors` trains with theirs (AdamW lr 1e-4 on
  every parameter, weight decay 1e-4, batch 64, 200 epochs without early stop, warm-up then cosine per
  epoch, no clipping; `AUTHORS_RECIPE`), still selected on validation MAE; `selection=test-per-metric`
  reproduces their test-selected checkpoints, to measure that flaw.
- The switches `adversarial=False` removes the gradient reversal with the discriminator (it exists for
  the adversary).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from msabench.attention import Encoder, Fusion, HyperLayer, authors_fusion_depth
from msabench import training
from msabench.errors import MsabenchError
from msabench.torch_baseline import (BaselineNet, Float32Linear, Options, Output, TextEncoder, TorchBaseline,
                                     rows_differ)

MODS = ("T", "A", "V")


@dataclass(frozen=True)
class LNLNOptions(Options):
    # The authors' recipe (`recipe=authors`): AdamW at lr 1e-4 for every parameter (BERT's too), weight decay 1e-4,
    # batch 64, 200 epochs with no early stop, linear warm-up over the first 10% of epochs then cosine, once per
    # epoch; no gradient clipping; MSE; per-modality missing augmentation (configs/train_*.yaml, train.py,
    # core/scheduler.py, core/dataset.py)
    AUTHORS_RECIPE: ClassVar[training.Recipe] = training.Recipe(
        epochs=200, batch_size=64, lr=1e-4, bert_lr=1e-4, weight_decay=1e-4, warmup=0.1, schedule="epoch-cosine",
        patience=0, grad_clip=0.0, loss="mse", augment=True, complete_fraction=0.5, complete_per_modality=True)
    epochs: int = 18
    dropout: float = 0.0  # the authors' modules use none
    completeness_check: bool = True  # estimate the language completeness w (off: w = 0.5 fixed)
    proxy_generation: bool = True  # proxy language feature from audio + vision, blended by w (off: H_D = H^1_T)
    adversarial: bool = True  # effectiveness discriminator + gradient reversal (needs proxy_generation)
    hyper_modality: bool = True  # language-guided hyper-modality learning (off: fuse with [H_A; H_V] directly)
    reconstructor: bool = True  # rebuild the complete input's tokens from the incomplete ones (auxiliary loss)
    tokens: int = 8  # learnable tokens per modality (input construction)
    heads: int = 4  # attention heads (authors: 8)
    head_dim: int = 16  # width of one head (authors: 64)
    depth: int = 2  # layers of each Transformer but the fusion (authors: 2); language scales = depth + 1
    fusion_depth: int = 0  # 0: the authors' per dataset (2 on MOSI, 4 on MOSEI and SIMS)
    cc_weight: float = 0.9
    adv_weight: float = 0.8
    rec_weight: float = 0.1

    def __post_init__(self):
        for key, ok, shown in (("tokens", self.tokens >= 1, ">= 1"),
                               ("heads", self.heads >= 1 and (self.hidden % 4 != 0 or self.hidden % self.heads == 0),
                                f">= 1 and divide hidden ({self.hidden})"),
                               ("head_dim", self.head_dim >= 1, ">= 1"), ("depth", self.depth >= 1, ">= 1"),
                               ("fusion_depth", self.fusion_depth >= 0, ">= 0 (0: the authors' per dataset)"),
                               ("cc_weight", self.cc_weight >= 0, ">= 0"), ("adv_weight", self.adv_weight >= 0, ">= 0"),
                               ("rec_weight", self.rec_weight >= 0, ">= 0")):
            if not ok:
                raise MsabenchError(f"model lnln: option {key} must be {shown}, got {getattr(self, key)!r}")



OPTIONS = LNLNOptions
VERSION = 2  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = "LNLN"  # its name in tables and figures (the paper's)



class _Reverse(torch.autograd.Function):
    """Identity forward; gradient times -1 backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    return _Reverse.apply(x)


def two_layer(hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.1), nn.Linear(hidden // 2, out))


def text_completeness(clean: dict, corrupted: dict) -> torch.Tensor:
    """[B] share of the droppable language positions whose input the corrupted view left unchanged.

    Droppable: valid positions, less [CLS] (position 0) and the last valid one ([SEP]) where the text
    has token ids (masking never drops them; the model may read ids or features). Text given only as
    features has no special tokens. No droppable position: 1.
    """
    valid = clean["text_mask"] > 0
    if "text_ids" in clean:
        same = clean["text_ids"] == corrupted["text_ids"]
        if "text_features" in clean:
            same = same & (clean["text_features"] == corrupted["text_features"]).all(-1)
        lengths = valid.sum(1)
        pos = torch.arange(valid.shape[1], device=valid.device)[None, :]
        droppable = valid & (pos > 0) & (pos < (lengths - 1)[:, None])
    else:
        same = (clean["text_features"] == corrupted["text_features"]).all(-1)
        droppable = valid
    n = droppable.sum(1)
    kept = (same & droppable).sum(1)
    return torch.where(n > 0, kept.float() / n.clamp(min=1).float(), torch.ones_like(n, dtype=torch.float32))


class Net(BaselineNet):
    def __init__(self, info, opts: LNLNOptions):
        super().__init__()
        self.opts = opts
        h, k, d = opts.hidden, opts.tokens, opts.depth
        sizes = dict(hidden=h, heads=opts.heads, head_dim=opts.head_dim)
        self.text = TextEncoder(info, opts)
        self.proj = nn.ModuleDict({"A": nn.Linear(info.audio_dim, h), "V": nn.Linear(info.vision_dim, h)})
        lengths = {"T": info.text_len, "A": info.audio_len, "V": info.vision_len}
        self.inputs = nn.ModuleDict({m: Encoder(lengths[m], k, depth=d, **sizes) for m in MODS})
        self.language = Encoder(k, 0, depth=d, **sizes)
        source = k if opts.hyper_modality else 2 * k
        self.fusion = Fusion(source, k, depth=opts.fusion_depth or authors_fusion_depth(info), **sizes)
        self.regress = Float32Linear(h, 1)
        # optional parts last, so the parameters above start alike whatever the switches
        if opts.completeness_check:
            self.cc_encoder = Encoder(k, 1, depth=d, **sizes)
            self.cc_head = nn.Sequential(two_layer(h, 1), nn.Sigmoid())
        if opts.proxy_generation:
            self.proxy_tokens = nn.Parameter(torch.ones(k, h))
            self.generator = Encoder(3 * k, k, depth=d, **sizes)
            if opts.adversarial:
                self.discriminator = two_layer(h, 2)
        if opts.hyper_modality:
            self.hyper_tokens = nn.Parameter(torch.ones(k, h))
            # the authors' hyper-modality layers split `hidden` among the heads (head width hidden / heads)
            self.hyper = nn.ModuleList(HyperLayer(h, opts.heads, h // opts.heads) for _ in range(d + 1))
        if opts.reconstructor:
            self.reconstruct = nn.ModuleDict({m: Encoder(k, 0, depth=d, **sizes) for m in MODS})

    @property
    def uses_adversary(self) -> bool:
        return self.opts.proxy_generation and self.opts.adversarial

    def construct(self, x: dict) -> dict:
        """Input construction: the token sets H^1_m [B, tokens, H]."""
        k = self.opts.tokens
        seqs = {"T": self.text(x)[0], "A": self.proj["A"](x["audio"]), "V": self.proj["V"](x["vision"])}
        return {m: self.inputs[m](seqs[m])[:, :k] for m in MODS}

    def run(self, x: dict) -> dict:
        o, k = self.opts, self.opts.tokens
        tok = self.construct(x)
        b = tok["T"].shape[0]
        out = {"tokens": tok}
        if o.completeness_check:
            out["w"] = self.cc_head(self.cc_encoder(tok["T"])[:, 0]).squeeze(-1)
        dominant = tok["T"]
        if o.proxy_generation:
            start = self.proxy_tokens.unsqueeze(0).expand(b, -1, -1).to(tok["A"].dtype)
            proxy = self.generator(torch.cat([start, tok["A"], tok["V"]], 1))[:, :k]
            proxy = reverse_gradient(proxy) if o.adversarial else proxy
            out["proxy"] = proxy
            w = out["w"] if o.completeness_check else torch.full((b,), 0.5, dtype=proxy.dtype, device=proxy.device)
            w = w.to(proxy.dtype)[:, None, None]
            dominant = w * tok["T"] + (1.0 - w) * proxy
        out["dominant"] = dominant
        scales = self.language.scales(dominant)
        if o.hyper_modality:
            memory = self.hyper_tokens.unsqueeze(0).expand(b, -1, -1).to(dominant.dtype)
            for scale, layer in zip(scales, self.hyper):
                memory = layer(scale, tok["A"], tok["V"], memory)
        else:
            memory = torch.cat([tok["A"], tok["V"]], 1)
        fused = self.fusion(memory, scales[-1])
        out["pred"] = self.regress(fused[:, 1:].mean(1)).squeeze(-1)
        return out

    def forward(self, x: dict) -> Output:
        return Output(self.run(x)["pred"], {})

    def complete_tokens(self, clean: dict, corrupted: dict, tok: dict) -> dict:
        """Token sets of the complete input, with gradients (as the authors' second pass): rows the
        augmentation left complete reuse the incomplete pass's own (the same numbers and gradients)."""
        rows = torch.nonzero(rows_differ(clean, corrupted)).squeeze(1)
        if not len(rows):
            return tok
        other = self.construct({key: v[rows] for key, v in clean.items()})
        out = {}
        for m in MODS:
            full = tok[m].clone()
            full[rows] = other[m].to(full.dtype)
            out[m] = full
        return out

    def loss_parts(self, clean: dict, corrupted: dict, y: torch.Tensor) -> dict:
        o = self.opts
        out = self.run(corrupted)
        parts = {"mse": F.mse_loss(out["pred"], y)}  # the authors' task loss (sigma = 1)
        if o.completeness_check:
            target = text_completeness(clean, corrupted)
            parts["cc"] = o.cc_weight * F.mse_loss(out["w"], target.to(out["w"].dtype))
        if self.uses_adversary or o.reconstructor:
            complete = self.complete_tokens(clean, corrupted, out["tokens"])
            if self.uses_adversary:
                rows = torch.cat([out["dominant"], complete["T"]]).flatten(0, 1)
                n = out["dominant"].shape[0] * out["dominant"].shape[1]
                classes = torch.cat([torch.ones(n), torch.zeros(n)]).long().to(rows.device)
                parts["adv"] = o.adv_weight * F.cross_entropy(self.discriminator(rows).float(), classes)
            if o.reconstructor:
                rebuilt = torch.cat([self.reconstruct[m](out["tokens"][m]) for m in MODS], 1)
                parts["rec"] = o.rec_weight * F.mse_loss(rebuilt, torch.cat([complete[m] for m in MODS], 1))
        return parts


class LNLN(TorchBaseline):
    name = "lnln"
    Options = LNLNOptions

    def make_net(self):
        return Net(self.info, self.options)

    def recipe(self):
        # the authors' augmentation and task loss under both recipes (`Net.loss_parts` computes MSE), so the
        # recipe recorded with a checkpoint says what trained it
        return dataclasses.replace(super().recipe(), complete_per_modality=True, loss="mse")


def build(info, options=None):
    return LNLN(info, options)
