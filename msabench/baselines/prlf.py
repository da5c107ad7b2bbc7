"""`prlf`: Progressive Representation Learning (AMRE reliability + ProgInteract alignment).

Re-implementation of PRLF, "Progressive Representation Learning for multimodal sentiment
analysis with missing modalities", arXiv:2603.09111 (2026). Only the abstract is public and
no code is; this file follows the abstract and fills every gap with the simplest standard
choice. Part by part:

From the paper (abstract):
- An Adaptive Modality Reliability Estimator (AMRE) scores the reliability of each modality
  from *recognition confidence* and *Fisher information* and picks a *dominant* modality.
- A Progressive Interaction module (ProgInteract) *iteratively* aligns the other modalities
  to the dominant one, improving cross-modal consistency while suppressing noise; the result
  is fused and regressed.

Our choices (the gaps):
- Encoders: the shared `Encoders` (one 1-layer Transformer per modality, hidden 64), as in
  `late-fusion`, so the two models differ only in the PRLF parts.
- Unimodal heads (the "recognition" AMRE scores): every modality's mean-pooled encoding
  p_m has an MLP head predicting a Laplace distribution (mu_m, b_m) of the sentiment
  (b_m = softplus + 0.05). Trained with an auxiliary loss (`unimodal_heads`): L1(mu_m, y)
  plus the Laplace NLL log b_m + |y - mu_m| / b_m with mu_m detached (so b_m learns the
  head's own expected absolute error), averaged over modalities, weight `uni_weight`.
  Laplace because the main loss is L1 (MMSA's regression loss).
- Recognition confidence, per sample: the predictive probability that the head's polarity
  is right, P(sign y = sign mu_m) = 1 - exp(-|mu_m| / b_m) / 2; we use c_m = 1 - exp(-|mu_m|/b_m)
  (that probability rescaled to [0, 1)).
- Fisher information, per sample: the Fisher information of the unimodal predictive about
  the sentiment (its location), E[(d log p(y) / d mu)^2] = 1 / b_m^2 for a Laplace; we use
  its log, f_m = -2 log b_m. Closed form: no gradients are needed at inference.
- Reliability s_m = beta_c * c_m + beta_f * f_m (beta_c, beta_f learned, positive, start at 1);
  weights alpha = softmax over modalities of s. Soft and differentiable in training AND at
  inference by default (no train/test mismatch). The dominant modality is argmax alpha
  (`Net.analyse` returns it). With `hard_dominant=on` ProgInteract uses the one-hot argmax
  (straight-through gradient of the softmax in training), so exactly one modality is the
  anchor; fusion keeps the soft weights either way. When the unimodal loss is on, the AMRE
  inputs (mu, b) are detached, so they stay honest uncertainty estimates and the task loss
  only tunes beta; with the unimodal loss off they are learned end-to-end as a gate.
- ProgInteract: `rounds` (default 2) rounds, own parameters per round. In each round the
  other modalities' sequences are the QUERY side and the dominant modality's sequence the
  KEY/VALUE side: X_m <- X_m + W_o(sum_{d != m} alpha_d * Attn(Q = X_m, KV = X_d)), then
  X_m <- X_m + (1 - alpha_m) * FFN(LN(X_m)). With a one-hot alpha this is plain cross-modal
  attention of every non-dominant modality to the dominant one, and the dominant sequence
  is left unchanged (it is the anchor); with soft alpha each modality moves towards the
  others in proportion to their reliability. All (m, d) pairs run as one masked, per-block
  softmax attention over the concatenated sequences, so unaligned lengths work too. For
  speed on CPU the rounds work on `segments` (default 10) masked-mean segments of each
  encoded sequence (ceil(L/10) steps each; `segments=0`: every step) and attention weights
  get no dropout; pooled representations are count-weighted segment means, which equal the
  masked step means before the first round.
- Alignment objective (`align_loss`): after round k, the pooled aligned representation of
  every modality m is pulled (1 - cosine) towards the stop-gradient reliability-weighted
  pooled representation of the others, sum_{d != m} alpha_d p_d / sum_{d != m} alpha_d
  (the dominant's when alpha is one-hot), weighted by (1 - alpha_m) (detached) and by
  round: w_k proportional to k (later rounds are asked to agree more: "progressive").
  Weight `align_weight`. With ProgInteract off it applies to the pooled encodings.
- Fusion and regression: the final pooled representations h_m, scaled by 3 * alpha_m
  (reliability-weighted; uniform alpha gives the plain concatenation), concatenated, MLP.

Switches (each component can be turned off, the model stays sensible):
- `amre=off`: uniform reliability (alpha = 1/3); the "dominant" is the mean of the modalities
  (text with `hard_dominant=on`). The unimodal heads then only act as an auxiliary loss.
- `prog_interact=off`: no cross-modal rounds; reliability-weighted fusion of the pooled
  encodings (the alignment loss, if on, acts on those).
- `align_loss=off`: no alignment objective.
- `unimodal_heads=off`: no auxiliary unimodal loss (the heads, if AMRE is on, are trained
  only through the task loss).
All four off is `late-fusion` (same encoders, concatenation, MLP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from msabench.torch_baseline import BaselineNet, Encoders, Options, Output, TorchBaseline, head, masked_mean, mlp

MODS = ("T", "A", "V")
MIN_SCALE = 0.05  # smallest Laplace scale of a unimodal head: keeps the NLL and 1/b^2 bounded
NEG = -1e9  # attention logit of a padding key


@dataclass(frozen=True)
class PRLFOptions(Options):
    amre: bool = True  # reliability from confidence + Fisher information; off: uniform weights
    prog_interact: bool = True  # cross-modal alignment rounds; off: fusion of pooled encodings
    align_loss: bool = True  # cosine alignment objective towards the dominant modality
    unimodal_heads: bool = True  # auxiliary L1 + Laplace-NLL loss of the unimodal heads
    hard_dominant: bool = False  # ProgInteract anchors on the argmax modality (straight-through)
    rounds: int = 2  # ProgInteract rounds
    segments: int = 10  # ProgInteract works on this many mean-pooled segments per modality; 0: every step
    uni_weight: float = 0.5  # weight of the unimodal-head loss (mean over modalities)
    align_weight: float = 0.1  # weight of the alignment loss


OPTIONS = PRLFOptions
VERSION = 1  # the identity of its results with its name and options: bump when its numbers are meant to change
DISPLAY = "PRLF"  # its name in tables and figures (the paper's)


def segment(seq, valid, k: int):
    """[B,L,H] -> k masked-mean segments [B,k,H] of ceil(L/k) steps each, and their valid counts [B,k]."""
    w = valid.to(seq.dtype)
    if k <= 0 or k >= seq.shape[1]:
        return seq, w
    size = -(-seq.shape[1] // k)
    pad = size * k - seq.shape[1]
    if pad:
        seq, w = F.pad(seq, (0, 0, 0, pad)), F.pad(w, (0, pad))
    b, _, h = seq.shape
    counts = w.view(b, k, size).sum(-1)
    sums = (seq * w.unsqueeze(-1)).view(b, k, size, h).sum(2)
    return sums / counts.clamp(min=1.0).unsqueeze(-1), counts


def weighted_mean(seq, counts):
    """Count-weighted mean of segments: equals the masked mean over the steps they pool."""
    return (seq * counts.unsqueeze(-1)).sum(1) / counts.sum(1, keepdim=True).clamp(min=1.0)


class UnimodalHead(nn.Module):
    """Pooled encoding -> Laplace (mu, b) of the sentiment."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.net = head(hidden, hidden, 2, dropout)

    def forward(self, pooled):
        mu, raw = self.net(pooled).unbind(-1)
        return mu, F.softplus(raw) + MIN_SCALE


class InteractRound(nn.Module):
    """One ProgInteract round over the concatenated sequences [B, N, H] of the three modalities."""

    def __init__(self, hidden: int, dropout: float, heads: int = 4):
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.q, self.k, self.v = (nn.Linear(hidden, hidden) for _ in range(3))
        self.o = nn.Linear(hidden, hidden, bias=False)  # no bias: a zero mixture is a zero update
        self.ff = mlp(hidden, 2 * hidden, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def _split(self, t):
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dh).transpose(1, 2)  # [B, h, N, dh]

    def forward(self, x, valid, blocks, pair_w, stay):
        """x [B,N,H]; valid [B,N]; blocks: slices per modality; pair_w [B,N,3] weight of key
        modality d for each query position (alpha_d, 0 for its own modality); stay [B,N] =
        1 - alpha of the position's modality."""
        q = self._split(self.q(self.norm_q(x)))
        kv = self.norm_kv(x)
        k, v = self._split(self.k(kv)), self._split(self.v(kv))
        mixed = torch.zeros_like(q)
        for d, blk in enumerate(blocks):
            logits = q @ k[:, :, blk].transpose(-1, -2) / math.sqrt(self.dh)  # [B,h,N,Ld]
            logits = logits.masked_fill(~valid[:, None, None, blk], NEG)
            attn = torch.softmax(logits, dim=-1)  # no dropout on attention weights (cost, see docstring)
            mixed = mixed + pair_w[:, None, :, d, None] * (attn @ v[:, :, blk])
        b, _, n, _ = mixed.shape
        x = x + self.drop(self.o(mixed.transpose(1, 2).reshape(b, n, -1)))
        return x + stay.unsqueeze(-1) * self.drop(self.ff(self.norm_ff(x)))


class Net(BaselineNet):
    def __init__(self, info, opts: PRLFOptions):
        super().__init__()
        self.opts = opts
        h = opts.hidden
        self.encoders = Encoders(info, opts)
        self.uni = nn.ModuleList(UnimodalHead(h, opts.dropout) for _ in MODS)
        if opts.amre:
            # softplus(0.5413) = 1.0: both terms start with weight 1
            self.beta = nn.Parameter(torch.full((2,), 0.5413))
        if opts.prog_interact:
            self.rounds = nn.ModuleList(InteractRound(h, opts.dropout) for _ in range(opts.rounds))
        self.head = head(3 * h, h, 1, opts.dropout)

    # ---- AMRE ------------------------------------------------------------------------------
    def reliability(self, mu, b):
        """mu, b [B,3] -> (alpha [B,3] soft weights, confidence [B,3], log Fisher [B,3])."""
        if self.opts.unimodal_heads:
            mu, b = mu.detach(), b.detach()
        conf = 1.0 - torch.exp(-mu.abs() / b)
        log_fisher = -2.0 * torch.log(b)
        if not self.opts.amre:
            return torch.full_like(mu, 1.0 / len(MODS)), conf, log_fisher
        beta = F.softplus(self.beta)
        return torch.softmax(beta[0] * conf + beta[1] * log_fisher, dim=-1), conf, log_fisher

    def anchor_weights(self, alpha):
        """The weights ProgInteract aligns to: soft alpha, or one-hot argmax (straight-through)."""
        if not self.opts.hard_dominant:
            return alpha
        hard = F.one_hot(alpha.argmax(-1), len(MODS)).to(alpha.dtype)  # ties -> first (text)
        return hard + alpha - alpha.detach() if self.training else hard

    # ---- forward ---------------------------------------------------------------------------
    def run(self, x) -> dict:
        enc = self.encoders(x)
        seqs = [enc[m][0] for m in MODS]
        valids = [enc[m][1] for m in MODS]
        pooled = [masked_mean(s, v) for s, v in zip(seqs, valids)]
        mu, b = (torch.stack(t, -1) for t in zip(*(head(p) for head, p in zip(self.uni, pooled))))
        alpha, conf, log_fisher = self.reliability(mu, b)
        anchor = self.anchor_weights(alpha)
        stages = [pooled]  # pooled representations after each round (round 0: the encodings)
        if self.opts.prog_interact:
            h_dev = anchor.device
            segs, counts = zip(*(segment(s, v, self.opts.segments) for s, v in zip(seqs, valids)))
            lengths = [s.shape[1] for s in segs]
            starts = [0, lengths[0], lengths[0] + lengths[1]]
            blocks = [slice(s, s + n) for s, n in zip(starts, lengths)]
            mod_of = torch.cat([torch.full((n,), i, dtype=torch.long, device=h_dev) for i, n in enumerate(lengths)])
            own = F.one_hot(mod_of, len(MODS)).to(anchor.dtype)  # [N,3]
            pair_w = anchor[:, None, :] * (1.0 - own)[None]  # [B,N,3]
            stay = 1.0 - anchor[:, mod_of]  # [B,N]
            h, valid = torch.cat(segs, 1), torch.cat(counts, 1) > 0
            for rnd in self.rounds:
                h = rnd(h, valid, blocks, pair_w, stay)
                stages.append([weighted_mean(h[:, blk], c) for blk, c in zip(blocks, counts)])
        final = stages[-1]
        fused = torch.cat([len(MODS) * alpha[:, i, None] * final[i] for i in range(len(MODS))], -1)
        pred = self.head(fused).squeeze(-1)
        return {"pred": pred, "mu": mu, "b": b, "alpha": alpha, "anchor": anchor, "conf": conf,
                "log_fisher": log_fisher, "stages": stages}

    def forward(self, x):
        return Output(self.run(x)["pred"], {})

    def analyse(self, x) -> dict:
        """Per-sample AMRE outputs for inspection: weights, dominant modality, confidence, Fisher."""
        out = self.run(x)
        return {"alpha": out["alpha"], "dominant": out["anchor"].argmax(-1), "confidence": out["conf"],
                "log_fisher": out["log_fisher"], "mu": out["mu"], "b": out["b"]}

    # ---- losses ----------------------------------------------------------------------------
    def alignment(self, stages, anchor):
        w = anchor.detach()
        used = stages[1:] if len(stages) > 1 else stages
        round_w = torch.arange(1, len(used) + 1, dtype=w.dtype, device=w.device)
        round_w = round_w / round_w.sum()
        total = w.new_zeros(())
        for rw, reps in zip(round_w, used):
            reps = torch.stack(reps, 1)  # [B,3,H]
            for m in range(len(MODS)):
                others = w.clone()
                others[:, m] = 0.0
                norm = others.sum(-1, keepdim=True)
                target = (others.unsqueeze(-1) * reps).sum(1) / norm.clamp(min=1e-6)
                cos = F.cosine_similarity(reps[:, m], target.detach(), dim=-1, eps=1e-6)
                total = total + rw * ((1.0 - w[:, m]) * (1.0 - cos)).mean() / len(MODS)
        return total

    def loss_parts(self, clean, corrupted, y):
        out = self.run(corrupted)
        parts = {"l1": F.l1_loss(out["pred"], y)}
        if self.opts.unimodal_heads:
            yy = y[:, None].expand_as(out["mu"])
            l1 = (out["mu"] - yy).abs().mean()
            nll = (torch.log(out["b"]) + (yy - out["mu"].detach()).abs() / out["b"]).mean()
            parts["unimodal"] = self.opts.uni_weight * (l1 + nll)
        if self.opts.align_loss:
            parts["align"] = self.opts.align_weight * self.alignment(out["stages"], out["anchor"])
        return parts


class PRLF(TorchBaseline):
    name = "prlf"
    Options = PRLFOptions

    def make_net(self):
        return Net(self.info, self.options)


def build(info, options=None):
    return PRLF(info, options)
