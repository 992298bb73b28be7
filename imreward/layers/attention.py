"""BERT-style post-norm attention and feed-forward blocks on ``scaled_dot_product_attention``.

Written here rather than taken from transformers because its BLIP text model computes attention
with explicit matmuls (no fused kernel) and its internals change between releases; the parameter
names follow BERT (``self.query``, ``output.dense``, ``output.LayerNorm``) so BLIP checkpoints load
unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionProjections(nn.Module):
    """Query/key/value projections and the attention itself. Keys and values may come from a
    sequence of another width (``kv_width``), which makes this a cross-attention."""

    def __init__(self, width: int, kv_width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(kv_width, width)
        self.value = nn.Linear(kv_width, width)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """hidden [B, L, W] attends to context [B, S, kv_width]; key_mask [B, 1, 1, S] bool (True = attend)."""
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(context))
        v = self._split_heads(self.value(context))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )
        batch, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(batch, length, -1)


class ResidualOutput(nn.Module):
    """Linear, dropout, then LayerNorm over the sum with the block's input (BERT's post-norm)."""

    def __init__(self, in_width: int, width: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_width, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    """Self-attention (``kv_width == width``) or cross-attention block with its residual output."""

    def __init__(self, width: int, num_heads: int, eps: float, dropout: float, attention_dropout: float,
                 kv_width: int | None = None) -> None:
        super().__init__()
        self.self = AttentionProjections(width, kv_width or width, num_heads, attention_dropout)
        self.output = ResidualOutput(width, width, eps, dropout)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        attended = self.self(hidden, hidden if context is None else context, key_mask)
        return self.output(attended, hidden)


class Intermediate(nn.Module):
    """BERT's feed-forward expansion: linear then exact GELU."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))
