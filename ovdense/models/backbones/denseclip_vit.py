"""DenseCLIP's CLIP ViT backbone: a 4-level feature pyramid for mmseg / mmdet necks."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from ...clip import CLIPModel
from ...registry import register
from .clip_vit import OVCLIPViT, tokens_to_map


@register('MODELS')
class OVDenseCLIPViT(BaseModule):
    """DenseCLIP's CLIP ViT backbone: a 4-level pyramid from chosen blocks (and the projected embeddings).

    As the reference: the tower runs :class:`~ovdense.models.methods.OVDenseCLIPMethod` (the CLS token receives
    ``class_embedding`` twice), patch positions are resized bilinearly to the grid, the patch tokens after each
    block of ``out_indices`` are turned into maps at 4x, 2x, 1x and 0.5x (patch 16; 2x, 1x, 0.5x, 0.25x for
    patch 8), and the final tokens go through ``ln_post`` and the projection.

    Args:
        clip: :class:`CLIPModel` or :func:`build_clip` keyword arguments.
        out_indices: four blocks (reference ViT-B/16: 3, 5, 7, 11).
        norm_cfg: norm of the first up-sampling branch (reference: SyncBN).
        with_embeddings: also return the global embedding (B, D, 1, 1) and the patch embeddings (B, D, h, w)
            in the text space (:class:`OVDenseCLIP` sets it); without them the output is the 4 maps a stock
            mmseg / mmdet neck takes.
        pretrained: a CLIP checkpoint file (mmseg's model-level ``pretrained``, as the reference configs give
            ``pretrained/ViT-B-16.pt``): replaces ``clip``'s checkpoint.
    """

    def __init__(self, clip: CLIPModel | dict, *, out_indices: Sequence[int] = (3, 5, 7, 11),
                 norm_cfg: dict | None = None, with_embeddings: bool = False, pretrained: str | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_indices) != 4:
            raise ValueError(f'out_indices must name 4 blocks, got {list(out_indices)}')
        self.with_embeddings = with_embeddings
        self.vit = OVCLIPViT(clip, dict(type='OVDenseCLIPMethod'), out_indices=out_indices, pos_interp='bilinear',
                             frozen=False, pretrained=pretrained)
        self.vit.tower.require_cls(f"DenseCLIP's context decoder reads the CLS token ('{self.vit.clip.name}')")
        c = self.vit.tower.width
        norm_cfg = norm_cfg or dict(type='SyncBN', requires_grad=True)
        p = self.vit.patch_size
        if p == 16:
            self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2), build_norm_layer(norm_cfg, c)[1],
                                      nn.GELU(), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn2 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn3 = nn.GroupNorm(1, c)
            self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, 2))
        elif p == 8:
            self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn2 = nn.GroupNorm(1, c)
            self.fpn3 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, 2))
            self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(4, 4))
        else:
            raise ValueError(f'DenseCLIP pyramids are defined for patch sizes [8, 16], got {p}')

    @property
    def clip(self) -> CLIPModel:
        return self.vit.clip

    def init_weights(self) -> None:
        """Load the CLIP weights (once); the pyramid branches keep their initialisation."""
        self.vit.init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> 4 pyramid maps (B, width, .., ..) [+ global embedding (B, D, 1, 1), patch
        embeddings (B, D, h, w) with ``with_embeddings``]."""
        out = self.vit.forward_tokens(x)  # OVDenseCLIPMethod: the reference's embedding, standard blocks
        maps = tuple(op(m) for op, m in zip((self.fpn1, self.fpn2, self.fpn3, self.fpn4), out.intermediates))
        if not self.with_embeddings:
            return maps
        return (*maps, out.tokens[:, 0, :, None, None], tokens_to_map(out.tokens, out.grid))
