"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP applies it."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

_OFFSETS8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _neighbours(x: torch.Tensor, dilations: Sequence[int], offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(B, K, len(dilations)*len(offsets), H, W): x shifted to each neighbour (replicate padding)."""
    H, W = x.shape[-2:]
    out = []
    for d in dilations:
        xp = F.pad(x, [d] * 4, mode='replicate')
        out += [xp[..., d + dy * d:d + dy * d + H, d + dx * d:d + dx * d + W] for dy, dx in offsets]
    return torch.stack(out, 2)


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

    def forward(self, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Args: image (B, K, H, W); scores (B, C, h, w), resized to (H, W). Returns (B, C, H, W)."""
        scores = F.interpolate(scores, size=image.shape[-2:], mode='bilinear', align_corners=True)
        nine = _neighbours(image, self.dilations, _OFFSETS8[:4] + [(0, 0)] + _OFFSETS8[4:])
        std = nine.std(2, keepdim=True)
        aff = -(image.unsqueeze(2) - _neighbours(image, self.dilations, _OFFSETS8)).abs() / (1e-8 + 0.1 * std)
        aff = torch.softmax(aff.mean(1, keepdim=True), 2)
        for _ in range(self.num_iter):
            scores = (_neighbours(scores, self.dilations, _OFFSETS8) * aff).sum(2)
        return scores
