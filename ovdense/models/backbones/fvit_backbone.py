"""F-ViT's backbone: a frozen CLIP ViT as a 4-level feature pyramid for any mmdet / mmseg neck."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from ...registry import register
from .clip_vit import OVCLIPViT, tokens_to_map


@register('MODELS')
class OVFViTBackbone(BaseModule):
    """Frozen CLIP ViT -> 4-level feature pyramid (strides p/4, p/2, p, 2p) for an FPN neck.

    Blocks ``out_indices`` (reference: 3/5/7/11 for B/16, 6/10/14/23 for L/14) are taken at the patch
    grid and resized by 2 transposed convs (x4), 1 transposed conv (x2), identity and max-pooling (/2),
    as F-ViT. The last block runs by the dense ``method`` (MaskCLIP's value path in the reference). The CLIP
    stays frozen and in eval mode (:class:`OVCLIPViT` with ``frozen=True``).

    Args:
        clip: a :class:`~ovdense.clip.CLIPModel` or ``build_clip`` kwargs.
        out_indices: 4 block indices.
        method: the dense method's config (:mod:`ovdense.models.methods`; reference: ``dict(type='OVMaskCLIP')``).
        norm_cfg: norm after the first transposed conv of the x4 branch (None: none).
        with_dense: also return the L2-normalised dense CLIP map (B, D, h, w) as a 5th output (for
            :class:`OVFViT`'s VLM score fusion).
        pos_interp: position-embedding interpolation of :class:`OVCLIPViT`.
        out_channels: 4 output widths (1x1 convs after the resizing), e.g. ``(256, 512, 1024, 2048)`` to
            drop into a ResNet config's FPN unchanged; None keeps the ViT width on every level.
        pretrained: a CLIP checkpoint file: replaces ``clip``'s checkpoint.
    """

    def __init__(self, clip: Any, out_indices: Sequence[int] = (3, 5, 7, 11), *, method: dict | None = None,
                 norm_cfg: dict | None = None, with_dense: bool = False, pos_interp: str = 'bicubic',
                 out_channels: Sequence[int] | None = None, pretrained: str | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_indices) != 4:
            raise ValueError(f'out_indices must name 4 blocks, got {list(out_indices)}')
        self.vit = OVCLIPViT(clip, method or dict(type='OVMaskCLIP'), out_indices=out_indices, frozen=True, pos_interp=pos_interp,
                             pretrained=pretrained)
        if sorted(self.vit.out_indices) != list(self.vit.out_indices) or len(set(self.vit.out_indices)) != 4:
            n = len(self.vit.tower.blocks)
            raise ValueError(f'out_indices must be 4 increasing block indices of this {n}-block CLIP, got '
                             f'{list(out_indices)} (e.g. {[round(n * f) - 1 for f in (1 / 3, 1 / 2, 2 / 3, 1)]}; '
                             'F-ViT takes 3/5/7/11 of a 12-block ViT-B)')
        w = self.vit.tower.width
        self.width = w
        self.with_dense = with_dense
        self.up4 = nn.Sequential(nn.ConvTranspose2d(w, w, 2, 2),
                                 build_norm_layer(norm_cfg, w)[1] if norm_cfg else nn.Identity(),
                                 nn.GELU(), nn.ConvTranspose2d(w, w, 2, 2))
        self.up2 = nn.ConvTranspose2d(w, w, 2, 2)
        self.down2 = nn.MaxPool2d(2, 2)
        if out_channels is not None and len(out_channels) != 4:
            raise ValueError(f'out_channels must give 4 widths, got {list(out_channels)}')
        self.lateral = nn.ModuleList([nn.Conv2d(w, c, 1) for c in out_channels]) if out_channels else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> 4 maps (B, width, 4h, 4w), (2h, 2w), (h, w), (h/2, w/2) [+ dense (B, D, h, w)]."""
        with torch.no_grad():
            out = self.vit.forward_tokens(x)
        i0, i1, i2, i3 = out.intermediates
        levels = [self.up4(i0), self.up2(i1), i2, self.down2(i3)]
        if self.lateral is not None:
            levels = [conv(f) for conv, f in zip(self.lateral, levels)]
        if self.with_dense:
            dense = tokens_to_map(out.tokens, out.grid)
            levels.append(F.normalize(dense, dim=1))
        # contiguous: mmcv's RoIAlign silently misreads strided maps (open-mmlab/mmcv#2203); a conv of the
        # transposed tokens is channels-last
        return tuple(f.contiguous() for f in levels)
