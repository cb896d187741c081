"""ClearCLIP (Lan et al., ECCV 2024): query-query attention, no residual, no FFN in the last block."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVClearCLIP']


@register('MODELS')
class OVClearCLIP(OVDenseMethod):
    """Last block: ``out_proj(softmax(q q^T / sqrt(d)) v)`` alone (residual and FFN dropped)."""

    name = 'clearclip'

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        q, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        return vit.out(blk, torch.softmax(q @ q.transpose(-2, -1) * q.shape[-1] ** -0.5, -1) @ v)
