"""MaskCLIP (Zhou et al., ECCV 2022): the last block's value path, without attention."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import register
from .base import OVDenseMethod, attention_residual_ffn

__all__ = ['OVMaskCLIP']


@register('MODELS')
class OVMaskCLIP(OVDenseMethod):
    """Last block: each token's own value (no attention), residual and FFN kept (MaskCLIP, CLIPSelf's
    ``encode_dense``)."""

    name = 'maskclip'

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        _, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        return attention_residual_ffn(vit, blk, x, vit.out(blk, v))
