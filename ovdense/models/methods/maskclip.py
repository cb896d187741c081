"""MaskCLIP (Zhou et al., ECCV 2022): the last block's value path, without attention."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVMaskCLIP']


@register('MODELS')
class OVMaskCLIP(OVDenseMethod):
    """Last block: each token's own value (no attention), residual and FFN kept (MaskCLIP, CLIPSelf's
    ``encode_dense``, CAT-Seg's dense path).

    Args:
        cls_residual: add the CLS token's input to every token instead of each token's own (CAT-Seg's copy of CLIP,
            ``model_vpt.py`` ``forward_dense``: ``v + x[:1]``; its released weights were trained so: set it with
            CAT-Seg's ``reference_quirks``).
    """

    name = 'maskclip'

    def __init__(self, *, cls_residual: bool = False) -> None:
        super().__init__()
        self.cls_residual = cls_residual

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        _, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        x = (x[:, :1] if self.cls_residual else x) + blk.ls_1(vit.out(blk, v))
        return x + blk.ls_2(vit.mlp(blk, vit.ln(blk.ln_2, x)))

    def extra_repr(self) -> str:
        return f'{self.name}, cls_residual={self.cls_residual}'
