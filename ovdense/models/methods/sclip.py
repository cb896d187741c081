"""SCLIP (Wang et al., ECCV 2024): correlative self-attention in the last block."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import register
from .base import OVDenseMethod, attention_residual_ffn

__all__ = ['OVSCLIP']


@register('MODELS')
class OVSCLIP(OVDenseMethod):
    """Last block: ``softmax(q q^T) + softmax(k k^T)`` (scaled by head_dim^-1/2), residual and FFN kept."""

    name = 'sclip'

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        q, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        scale = q.shape[-1] ** -0.5
        attn = torch.softmax(q @ q.transpose(-2, -1) * scale, -1) + torch.softmax(k @ k.transpose(-2, -1) * scale, -1)
        return attention_residual_ffn(vit, blk, x, vit.out(blk, attn @ v))
