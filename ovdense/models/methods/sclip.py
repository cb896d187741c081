"""SCLIP (Wang et al., ECCV 2024): correlative self-attention in the last block."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...registry import register
from .base import OVDenseMethod, attention_residual_ffn

__all__ = ['OVSCLIP']


@register('MODELS')
class OVSCLIP(OVDenseMethod):
    """Last block: ``softmax(q q^T) + softmax(k k^T)`` (scaled by head_dim^-1/2), residual and FFN kept."""

    name = 'sclip'

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        q, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        # (softmax(q q^T) + softmax(k k^T)) v as two fused attentions: no (N, N) matrix
        out = F.scaled_dot_product_attention(q, q, v) + F.scaled_dot_product_attention(k, k, v)
        return attention_residual_ffn(vit, blk, x, vit.out(blk, out))
