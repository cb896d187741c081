"""DeCLIP's context loss (Wang et al., CVPR 2025): the student's last-block patch-to-patch correlation pulled towards
a vision foundation model's patch similarity."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ...clip import build_vfm
from ...clip.vfm import IMAGENET_MEAN, IMAGENET_STD, VFM
from ...registry import register
from .base import DistillBatch, OVDistillLoss


def vfm_similarity(feats: torch.Tensor) -> torch.Tensor:
    """(B, M, M) cosine similarity of the VFM's patch features (B, C, I, J), M = I * J."""
    e = F.normalize(feats.flatten(2), dim=1)
    return torch.einsum('bcm,bcn->bmn', e, e)


def _resize_tokens(x: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(..., h*w, C) patch features -> (..., I*J, C), bilinearly resized on the grid when it differs."""
    if tuple(grid) == tuple(size):
        return x
    lead, C = x.shape[:-2], x.shape[-1]
    m = x.reshape(-1, *grid, C).permute(0, 3, 1, 2)
    m = F.interpolate(m, size=size, mode='bilinear', align_corners=False)
    return m.permute(0, 2, 3, 1).reshape(*lead, size[0] * size[1], C)


def student_similarity(context: Sequence[torch.Tensor], grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The student's context similarity on the VFM's grid ``size`` from its context features, each (B, heads, h*w, d).

    One feature (q, k or v): the heads concatenated (B, h*w, heads * d), L2-normalised over all channels: (B, M, M).
    Several (csa: q, k; all: q, k, v): per head, each normalised over its own d channels, averaged: (B, heads, M, M)
    (the reference's two rules). A student grid other than the VFM's is bilinearly resized to it first.
    """
    if len(context) == 1:
        c = context[0]
        B, nh, n, d = c.shape
        c = F.normalize(_resize_tokens(c.transpose(1, 2).reshape(B, n, nh * d), grid, size), dim=-1)
        return c @ c.transpose(-2, -1)
    sims = []
    for c in context:
        c = F.normalize(_resize_tokens(c, grid, size), dim=-1)
        sims.append(c @ c.transpose(-2, -1))
    return sum(sims) / len(sims)


@register('MODELS')
class OVContextLoss(OVDistillLoss):
    """``mean over rows of ||T - S||_2``: T the VFM's patch similarity, S the student's context similarity
    (:func:`student_similarity` of the method's ``extras['context']``: the student must run
    :class:`~ovdense.models.methods.OVDeCLIP`). Rows are the B * M patches (B * heads * M for csa / all, whose
    per-head similarities meet the VFM's per image: the reference broadcasts them only at batch 1).

    The VFM sees the student's own input, un-normalised with the CLIP's statistics, resized (bicubic, antialiased) to
    the student's grid times the VFM's patch size and normalised with ImageNet's, so both models see exactly the same
    content at any aspect ratio. ``reference_quirks=True`` takes instead each sample's ``'proxy'`` image, resized
    from the original separately (:class:`~ovdense.datasets.OVCLIPSelfDataset` ``proxy_size``), as the reference does
    (its content rows round differently from the student's: 374/490 vs 427/560).

    Args:
        vfm: a :class:`~ovdense.clip.VFM` or :func:`~ovdense.clip.build_vfm` kwargs (DeCLIP B/16:
            ``model_name='vit_base_patch14_reg4_dinov2.lvd142m'``, ``checkpoint=...``).
        weight: the loss's weight (DeCLIP: 0.1).
        reference_quirks: the dataset's separately resized VFM input.
    """

    name = 'context'
    log_name = 'context_dist'

    def __init__(self, vfm: dict[str, Any] | VFM, *, weight: float = 0.1, reference_quirks: bool = False) -> None:
        super().__init__(weight=weight)
        if vfm is None:
            raise ValueError("OVContextLoss needs vfm=dict(model_name=..., checkpoint=...) (DeCLIP: a DINOv2 with "
                             "registers)")
        self.vfm = build_vfm(**vfm) if isinstance(vfm, dict) else vfm
        self.vfm.requires_grad_(False)
        self.reference_quirks = reference_quirks

    def init_weights(self) -> None:
        if self.vfm.weights_pending:
            self.vfm.load_weights()

    def vfm_input(self, batch: DistillBatch, grid: tuple[int, int]) -> torch.Tensor:
        """(B, 3, h * p, w * p) ImageNet-normalised VFM input for the student grid (h, w), p the VFM's patch."""
        images = batch.images
        if self.reference_quirks:
            proxies = [s.get('proxy') for s in batch.samples]
            if not proxies or any(p is None for p in proxies):
                raise ValueError("OVContextLoss(reference_quirks=True) reads each sample's 'proxy' image: set the "
                                 'dataset\'s proxy_size (the student grid times the VFM patch, e.g. 490 for 35 x 14)')
            return torch.stack(list(proxies)).to(images)
        mean, std = batch.student.clip.image_stats
        stat = lambda v: torch.tensor(v, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)  # noqa: E731
        x = images * stat(std) + stat(mean)
        p = self.vfm.patch_size
        x = F.interpolate(x, size=(grid[0] * p, grid[1] * p), mode='bicubic', antialias=True, align_corners=False)
        return (x.clamp(0, 1) - stat(IMAGENET_MEAN)) / stat(IMAGENET_STD)

    def forward(self, batch: DistillBatch) -> tuple[torch.Tensor, torch.Tensor]:
        out = batch.tokens()
        context = (out.extras or {}).get('context')
        if not context:
            raise ValueError(f'OVContextLoss needs context features from the student\'s dense method; '
                             f'{type(batch.student.method).__name__} gives none (use method=dict(type=\'OVDeCLIP\'))')
        with torch.no_grad():
            feats = self.vfm.patch_features(self.vfm_input(batch, out.grid))
            target = vfm_similarity(feats.float())
        sim = student_similarity(context, out.grid, tuple(feats.shape[-2:]))
        if sim.dim() == 4:
            target = target[:, None]
        rows = (target - sim.float()).norm(p=2, dim=-1)
        return rows.sum(), torch.tensor(float(rows.numel()), device=rows.device)

    def extra_repr(self) -> str:
        return f'{self.name}, weight={self.weight}, vfm={self.vfm.name}, reference_quirks={self.reference_quirks}'
