"""CAT-Seg's CLIP dense path (Cho et al., CVPR 2024): the last block's value path, as MaskCLIP's, feeding the cost
volume."""
from __future__ import annotations

from typing import Any

import torch

from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVCATSegCLIP']


@register('MODELS')
class OVCATSegCLIP(OVDenseMethod):
    """Last block: each token's own value through the output projection, the residual, then the FFN with its own
    (MaskCLIP's); CAT-Seg fine-tunes the CLIP through it.

    The reference's copy of CLIP (``model_vpt.py`` ``forward_dense``) adds the *CLS token's* input to every token
    instead of each token's own (``v + x[:1]``); ``reference_quirks=True`` reproduces it (its released weights were
    trained so).

    Args:
        reference_quirks: the CLS-input residual.
    """

    name = 'catseg'

    def __init__(self, *, reference_quirks: bool = False) -> None:
        super().__init__()
        self.reference_quirks = reference_quirks

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        _, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        shortcut = x[:, :1] if self.reference_quirks else x
        x = shortcut + blk.ls_1(vit.out(blk, v))
        return x + blk.ls_2(vit.mlp(blk, vit.ln(blk.ln_2, x)))

    def extra_repr(self) -> str:
        return f'{self.name}, reference_quirks={self.reference_quirks}'
