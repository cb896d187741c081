"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP applies it.

The neighbour sums are accumulated in place, one shifted view at a time (the reference stacks 16
shifted copies of every score map per iteration), so memory stays at three copies of the scores and
16 affinity maps, and the arithmetic is the reference's.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

_OFFSETS8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
_OFFSETS9 = _OFFSETS8[:4] + [(0, 0)] + _OFFSETS8[4:]


def _shifted(x: torch.Tensor, dilations: Sequence[int],
             offsets: Sequence[tuple[int, int]]) -> Iterator[torch.Tensor]:
    """Views of ``x`` (B, C, H, W) shifted to each neighbour, dilation by dilation (replicate padding)."""
    H, W = x.shape[-2:]
    for d in dilations:
        xp = F.pad(x, [d] * 4, mode='replicate')
        for dy, dx in offsets:
            yield xp[..., d + dy * d:d + dy * d + H, d + dx * d:d + dx * d + W]


class PAMR(nn.Module):
    """Refine class scores with local image affinities.

    Args:
        num_iter: refinement iterations.
        dilations: neighbourhood dilations in pixels.
    """

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (8, 16)) -> None:
        super().__init__()
        self.num_iter = num_iter
        self.dilations = tuple(dilations)

    @property
    def halo(self) -> int:
        """Pixels around a region that its refined scores depend on: on a crop grown by this much (and
        clipped to the image), the refined scores of the region equal those of the whole image (each
        iteration reads one dilation further, through the scores and the affinities alike)."""
        return max(self.dilations) * self.num_iter

    def affinity(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 16, H, W) softmax-normalised affinities of each pixel to its neighbours, from the image
        (B, K, H, W): ``-|I - I_n| / (1e-8 + 0.1 std)`` averaged over K, std over the 9-neighbourhoods."""
        n = len(self.dilations) * len(_OFFSETS9)
        mean = torch.zeros_like(image)
        for v in _shifted(image, self.dilations, _OFFSETS9):
            mean.add_(v)
        mean.div_(n)
        var = torch.zeros_like(image)
        for v in _shifted(image, self.dilations, _OFFSETS9):
            var.add_((v - mean).square_())
        denom = var.div_(n - 1).sqrt_().mul_(0.1).add_(1e-8)
        del mean
        aff = image.new_empty((image.shape[0], len(self.dilations) * len(_OFFSETS8), *image.shape[-2:]))
        for k, v in enumerate(_shifted(image, self.dilations, _OFFSETS8)):
            aff[:, k] = (image - v).abs_().div_(denom).mean(1).neg_()
        return torch.softmax(aff, 1)

    def refine(self, scores: torch.Tensor, aff: torch.Tensor) -> torch.Tensor:
        """Iterate ``s <- sum_n aff_n * s_n`` on scores (B, C, H, W) with affinities (B, 16, H, W)."""
        for _ in range(self.num_iter):
            out = torch.zeros_like(scores)
            for k, v in enumerate(_shifted(scores, self.dilations, _OFFSETS8)):
                out.addcmul_(v, aff[:, k:k + 1])
            scores = out
        return scores

    def forward(self, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Args: image (B, K, H, W); scores (B, C, h, w), resized to (H, W). Returns (B, C, H, W)."""
        if scores.shape[-2:] != image.shape[-2:]:
            scores = F.interpolate(scores, size=image.shape[-2:], mode='bilinear', align_corners=True)
        return self.refine(scores, self.affinity(image))
