"""BLIP's multimodal text encoder: BERT whose every layer also cross-attends to image tokens.

Self-attention is bidirectional and the [CLS] token stays at position 0 (ImageReward does not
replace it with [ENC]). Parameter names match BLIP's ``med.py`` so ``blip.text_encoder.*`` loads
unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from imreward.config import TextConfig
from imreward.layers import BertAttention, Intermediate, ResidualOutput


class TextEmbeddings(nn.Module):
    """Word plus absolute position embeddings (no token types), LayerNorm, dropout."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


class CrossAttentionLayer(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        common = dict(width=config.hidden_size, num_heads=config.num_heads, eps=config.layer_norm_eps,
                      dropout=config.hidden_dropout, attention_dropout=config.attention_dropout)
        self.attention = BertAttention(**common)
        self.crossattention = BertAttention(**common, kv_width=config.encoder_width)
        self.intermediate = Intermediate(config.hidden_size, config.intermediate_size)
        self.output = ResidualOutput(config.intermediate_size, config.hidden_size, config.layer_norm_eps,
                                     config.hidden_dropout)

    def forward(self, hidden: torch.Tensor, text_mask: torch.Tensor, image_tokens: torch.Tensor | None) -> torch.Tensor:
        hidden = self.attention(hidden, key_mask=text_mask)
        if image_tokens is not None:
            hidden = self.crossattention(hidden, context=image_tokens)
        return self.output(self.intermediate(hidden), hidden)


class LayerStack(nn.Module):
    """Holds the layers under the name ``layer`` (BERT's ``encoder.layer.N``)."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(CrossAttentionLayer(config) for _ in range(config.num_layers))


class CrossAttentionTextEncoder(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.encoder = LayerStack(config)
        self.gradient_checkpointing = False

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden state at the [CLS] position.

        Args:
            input_ids: [B, L] token ids.
            attention_mask: [B, L], 1 for tokens and 0 for padding.
            image_tokens: [B, N, encoder_width] output of the image encoder; ``None`` runs the
                encoder text-only, skipping every cross-attention block (BLIP's ``mode='text'``).
        Returns:
            [B, hidden_size] feature of the [CLS] token.
        """
        # Padding never influences [CLS] (it is masked as a key), so columns that are padding in
        # every row are dropped: the [CLS] output is unchanged and short prompts run faster.
        length = int(attention_mask.sum(dim=1).max().clamp(min=1))
        input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        text_mask = attention_mask.bool()[:, None, None, :]
        hidden = self.embeddings(input_ids)
        if image_tokens is not None:
            image_tokens = image_tokens.to(hidden.dtype)
        for layer in self.encoder.layer:
            if self.gradient_checkpointing and self.training:
                hidden = checkpoint(layer, hidden, text_mask, image_tokens, use_reentrant=False)
            else:
                hidden = layer(hidden, text_mask, image_tokens)
        return hidden[:, 0]
