"""ClearCLIP (Lan et al., ECCV 2024): query-query attention, no residual, no FFN in the last block."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVClearCLIP']


@register('MODELS')
class OVClearCLIP(OVDenseMethod):
    """Last block: ``out_proj(softmax(q q^T / sqrt(d)) v)`` alone (residual and FFN dropped)."""

    name = 'clearclip'

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        q, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        return vit.out(blk, F.scaled_dot_product_attention(q, q, v))  # fused: no (N, N) matrix
