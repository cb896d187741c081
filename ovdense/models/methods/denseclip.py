"""DenseCLIP's path (raoyongming/DenseCLIP ``models.py``, ``CLIPVisionTransformer.forward``): standard blocks, with the
reference's embedding."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...registry import register
from .base import OVDenseMethod

if TYPE_CHECKING:
    from ..backbones.clip_vit import OVCLIPViT

__all__ = ['OVDenseCLIPMethod']


@register('MODELS')
class OVDenseCLIPMethod(OVDenseMethod):
    """Every block standard; the CLS token receives ``class_embedding`` twice, as the token and inside its position
    term, as the reference's backbone does (``pos[:1] + cls``; its released weights were trained so). Towers without a
    CLS token (SigLIP) get the plain embedding. :class:`~ovdense.models.backbones.OVDenseCLIPViT` runs it (with
    ``pos_interp='bilinear'``) and builds its pyramid from the ``out_indices`` maps."""

    name = 'denseclip'
    trained_for = 'denseclip'  # its backbone is fine-tuned with DenseCLIP's head

    def embed(self, vit: 'OVCLIPViT', images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x, grid = vit.patch_tokens(images)
        cls = vit.tower.class_embedding
        if cls is not None:
            x = torch.cat([x[:, :1] + cls.to(x.dtype), x[:, 1:]], 1)
        return vit.ln(vit.tower.ln_pre, x), grid
