"""The attention blocks of ALMT's and LNLN's released code (models/almt_layer.py of Haoyu-ha/ALMT,
models/basic_layers.py of Haoyu-ha/LNLN: the same layers), written anew: both models are built from
them, so their structure and parameter counts match the authors' configurations.

- Attention: pre-LayerNorm with one LayerNorm each for query, key and value; `heads` x `head_dim`
  without bias on q/k/v (the inner width need not be `hidden`), output projection with bias.
- Feed-forward: LayerNorm, hidden -> hidden -> hidden with GELU (the authors' mlp_dim = hidden).
- Encoder: [extra tokens (zeros); x] + learned positional embeddings (N(0, 1)), then layers; no
  padding mask (the authors attend over padded and dropped positions alike).
- HyperLayer: adaptive hyper-modality learning; the residual adds to the normalised H_hyper, as the
  authors' code does (its LayerNorm output is what the shift is added to).
- Fusion: the target tokens query the source tokens, one shared zero-initialised extra token in front
  of both, positional embeddings for each.
No dropout: the authors' configurations use none.
"""

from __future__ import annotations

import torch
from torch import nn

# The authors' configs (both models): fusion depth 4 on MOSEI and SIMS, 2 on MOSI; synthetic and utterance-level
# data follow the dataset they stand in for
FOUR_LAYER_FUSION = ("mosei", "sims", "synth-sims")


def authors_fusion_depth(info) -> int:
    """The fusion depth ALMT's and LNLN's authors configure for the dataset `info` describes."""
    return 4 if info.name in FOUR_LAYER_FUSION else 2


class Attention(nn.Module):
    """Multi-head attention with a LayerNorm each for query, key and value (pre-norm), no q/k/v bias."""

    def __init__(self, hidden: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale = heads, head_dim ** -0.5
        self.norm_q, self.norm_k, self.norm_v = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.q, self.k, self.v = (nn.Linear(hidden, inner, bias=False) for _ in range(3))
        self.out = nn.Linear(inner, hidden)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, q, k, v):
        q, k, v = self.split(self.q(self.norm_q(q))), self.split(self.k(self.norm_k(k))), self.split(self.v(self.norm_v(v)))
        out = torch.softmax(q @ k.transpose(-1, -2) * self.scale, -1) @ v
        b, _, n, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, x):
        return self.net(self.norm(x))


class Layer(nn.Module):
    """x <- x + Attn(x, src, src); x <- x + FFN(x) (src = x: self-attention)."""

    def __init__(self, hidden: int, heads: int, head_dim: int):
        super().__init__()
        self.attn, self.ffn = Attention(hidden, heads, head_dim), FeedForward(hidden)

    def forward(self, x, src=None):
        src = x if src is None else src
        x = x + self.attn(x, src, src)
        return x + self.ffn(x)


class Encoder(nn.Module):
    """[extra tokens; x] + positional embeddings -> `depth` layers. Returns every scale (input and each
    layer's output) or the last."""

    def __init__(self, length: int, extra: int, hidden: int, depth: int, heads: int, head_dim: int):
        super().__init__()
        self.extra = nn.Parameter(torch.zeros(extra, hidden)) if extra else None
        self.pos = nn.Parameter(torch.randn(length + extra, hidden))
        self.layers = nn.ModuleList(Layer(hidden, heads, head_dim) for _ in range(depth))

    def scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.extra is not None:
            x = torch.cat([self.extra.unsqueeze(0).expand(x.shape[0], -1, -1).to(x.dtype), x], 1)
        x = x + self.pos[: x.shape[1]]
        out = [x]
        for layer in self.layers:
            out.append(layer(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scales(x)[-1]


class HyperLayer(nn.Module):
    """H_hyper <- LN(H_hyper) + Out(Attn(LN(lang) -> LN(audio)) + Attn(LN(lang) -> LN(vision)))."""

    def __init__(self, hidden: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.scale = heads, head_dim ** -0.5
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(4))  # language, audio, vision, hyper
        self.q = nn.Linear(hidden, inner, bias=False)
        self.k_a, self.k_v, self.v_a, self.v_v = (nn.Linear(hidden, inner, bias=False) for _ in range(4))
        self.out = nn.Linear(inner, hidden)

    def split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, lang, audio, vision, hyper):
        lang, audio, vision, hyper = (norm(t) for norm, t in zip(self.norms, (lang, audio, vision, hyper)))
        q = self.split(self.q(lang))
        found = 0
        for src, k, v in ((audio, self.k_a, self.v_a), (vision, self.k_v, self.v_v)):
            found = found + torch.softmax(q @ self.split(k(src)).transpose(-1, -2) * self.scale, -1) @ self.split(v(src))
        b, _, n, _ = found.shape
        return hyper + self.out(found.transpose(1, 2).reshape(b, n, -1))


class Fusion(nn.Module):
    """The language tokens (target) attend to the hyper-modality tokens (source); one shared extra token."""

    def __init__(self, source: int, target: int, hidden: int, depth: int, heads: int, head_dim: int):
        super().__init__()
        self.extra = nn.Parameter(torch.zeros(1, hidden))
        self.pos_s = nn.Parameter(torch.randn(source + 1, hidden))
        self.pos_t = nn.Parameter(torch.randn(target + 1, hidden))
        self.layers = nn.ModuleList(Layer(hidden, heads, head_dim) for _ in range(depth))

    def forward(self, source, target):
        extra = self.extra.unsqueeze(0).expand(source.shape[0], -1, -1).to(source.dtype)
        source = torch.cat([extra, source], 1) + self.pos_s
        target = torch.cat([extra, target], 1) + self.pos_t
        for layer in self.layers:
            target = layer(target, source)
        return target
