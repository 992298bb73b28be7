"""MPS's fusion block: image tokens attend to the condition-masked prompt tokens, then to each other.

Each layer is a cross-attention from image tokens to prompt tokens (multi-query: one key/value head,
with a parallel SwiGLU feed-forward) followed by a self-attention block (multi-query, rotary
positions, parallel SwiGLU feed-forward), both pre-LayerNorm and residual, after CoCa/PaLM. Neither
transformers nor timm has this block, so it is written here; parameter names follow the published
checkpoint's ``cross_model`` (see ``PUBLISHED_RENAMES``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# published "layers.{i}.0.fn." / "layers.{i}.1.fn." -> this module's names
PUBLISHED_RENAMES = {".0.fn.": ".cross_attention.", ".1.fn.": ".self_attention."}


class SwiGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.silu(gate) * x


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryFrequencies(nn.Module):
    """Holds ``inv_freq`` as the checkpoint stores it (a saved buffer, so its dtype is the checkpoint's)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, length: int) -> torch.Tensor:
        positions = torch.arange(length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        angles = torch.outer(positions, self.inv_freq)
        return torch.cat((angles, angles), dim=-1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """q [B, H, N, D] already scaled, k/v [B, M, D] shared by all heads, bias [B, H|1, N, M] additive."""
    scores = torch.einsum("bhnd,bmd->bhnm", q, k)
    if bias is not None:
        scores = scores + bias
    scores = scores - scores.amax(dim=-1, keepdim=True)
    return torch.einsum("bhnm,bmd->bhnd", scores.softmax(dim=-1), v)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


class FusionCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, head_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim, bias=False)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * ff_mult * dim, bias=False), SwiGLU(),
                                nn.Linear(ff_mult * dim, dim, bias=False))

    def forward(self, x: torch.Tensor, context: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        q = self.to_q(normed).unflatten(-1, (self.heads, -1)).transpose(1, 2) * self.scale
        k, v = self.to_kv(context).chunk(2, dim=-1)
        out = self.to_out(_merge_heads(_attend(q, k, v, bias.unsqueeze(1))))
        return x + out + self.ff(normed)


class FusionSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, head_dim ** -0.5
        self.split = (heads * head_dim, head_dim, head_dim, 2 * ff_mult * dim)
        self.norm = nn.LayerNorm(dim)
        self.rotary_emb = RotaryFrequencies(head_dim)
        self.fused_attn_ff_proj = nn.Linear(dim, sum(self.split), bias=False)
        self.attn_out = nn.Linear(heads * head_dim, dim, bias=False)
        self.ff_out = nn.Sequential(SwiGLU(), nn.Linear(ff_mult * dim, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, ff = self.fused_attn_ff_proj(self.norm(x)).split(self.split, dim=-1)
        q = q.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        angles = self.rotary_emb(x.shape[1])
        q, k = (t * angles.cos() + rotate_half(t) * angles.sin() for t in (q, k))
        out = self.attn_out(_merge_heads(_attend(q * self.scale, k, v, None)))
        return x + out + self.ff_out(ff)


class FusionLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int) -> None:
        super().__init__()
        self.cross_attention = FusionCrossAttention(dim, heads, head_dim, ff_mult)
        self.self_attention = FusionSelfAttention(dim, heads, head_dim, ff_mult)


class FusionModel(nn.Module):
    """Args: dim (the CLIP projection width), layers, heads, head_dim, ff_mult (1024, 4, 16, 64, 4 published)."""

    def __init__(self, dim: int, layers: int = 4, heads: int = 16, head_dim: int = 64, ff_mult: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(dim, heads, head_dim, ff_mult) for _ in range(layers))

    def forward(self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """image_tokens [B, N, dim], text_tokens [B, M, dim], bias [B, N, M] (0 or -inf) -> [B, N, dim]."""
        for layer in self.layers:
            image_tokens = layer.self_attention(layer.cross_attention(image_tokens, text_tokens, bias))
        return image_tokens
