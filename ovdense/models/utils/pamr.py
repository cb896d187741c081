"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP applies it.

The refinement ``s <- sum_n aff_n * s_n`` (10 iterations over every score map, each reading 16 neighbours of the
replicate-padded maps) is memory-bound: 10 iterations of 56 queries at 640 x 480 are 5.5 GFLOP and, as 16 shifted
multiply-adds over the whole maps, about 30 GB of memory traffic. On the CPU it runs as ovdense's stencil kernel
(``ovdense/csrc/stencil.cpp``): channel-major maps padded once, a few maps at a time through all iterations (they
stay in the cache), every load a contiguous vector; the affinities are one pass of a second kernel per image.
Elsewhere both run as the reference's shifted sums (one shifted view at a time, in place, instead of 16 stacked
copies). The sums are the reference's up to float rounding (the 16 terms added in another order).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import ext

_GROUP_BYTES = 16 * 2 ** 20  # padded score maps refined together through all iterations (8-16 MB: the fastest here)


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


def _step(x: torch.Tensor, aff: torch.Tensor, dy: list[int], dx: list[int], out: torch.Tensor) -> torch.Tensor:
    """One iteration of ovdense's CPU kernel on padded maps ``x`` (n, H + 2P, W + 2P) into ``out`` (the same shape),
    its border padded too; ``aff`` (16, H, W) the affinities of neighbours (``dy``, ``dx``)."""
    return torch.ops.ovdense.pamr_step.out(x, aff, dy, dx, out=out)


def _use_kernel(*tensors: torch.Tensor) -> bool:
    """Whether ovdense's CPU kernels run on these tensors: float32 on the CPU, the extension built (said when not)."""
    if any(t.device.type != 'cpu' or t.dtype != torch.float32 for t in tensors):
        return False
    return ext.built('PAMR runs as shifted sums, several times slower')


class PAMR(nn.Module):
    """Refine class scores with local image affinities.

    Args:
        num_iter: refinement iterations.
        dilations: neighbourhood dilations in pixels.
    """

    def __init__(self, num_iter: int = 10, dilations: Sequence[int] = (8, 16)) -> None:
        super().__init__()
        if len(set(dilations)) != len(dilations) or min(dilations, default=0) < 1:
            raise ValueError(f'PAMR dilations must be distinct positive integers, got {list(dilations)}')
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
        (B, K, H, W): ``-|I - I_n| / (1e-8 + 0.1 std)`` averaged over K, std over the 9-neighbourhoods (on the
        CPU one pass of ovdense's kernel per image over the padded guide, 2.4x faster at 427 x 640; elsewhere
        the reference's shifted views)."""
        if _use_kernel(image):
            P = max(self.dilations)
            stats = [(dy * d, dx * d) for d in self.dilations for dy, dx in _OFFSETS9]
            logits = torch.stack([torch.ops.ovdense.pamr_affinity_logits(
                F.pad(im[None], [P] * 4, mode='replicate')[0], *map(list, zip(*stats)), *map(list, zip(*self.offsets())))
                for im in image])
            return torch.softmax(logits, 1)
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

    def offsets(self) -> list[tuple[int, int]]:
        """(dy, dx) in pixels of each affinity channel's neighbour, in :meth:`affinity`'s order."""
        return [(dy * d, dx * d) for d in self.dilations for dy, dx in _OFFSETS8]

    def refine(self, scores: torch.Tensor, aff: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """Iterate ``s <- sum_n aff_n * s_n`` on scores (B, C, H, W) with affinities (B, 16, H, W) (compute them
        once to refine several score chunks of one image). ``inplace``: write the refined scores into ``scores``
        (and return it), whose values are spent anyway: one copy of the scores less at the peak."""
        B, C, H, W = scores.shape
        offsets = self.offsets()
        if aff.shape != (B, len(offsets), H, W):
            raise ValueError(f'PAMR.refine: affinities of shape {(B, len(offsets), H, W)} for scores of '
                             f'{tuple(scores.shape)}, got {tuple(aff.shape)}')
        out = scores if inplace else torch.empty_like(scores, memory_format=torch.contiguous_format)
        if not _use_kernel(scores, aff):
            for b in range(B):  # one image's score maps at a time: the padded copies stay one image's
                s = scores[b:b + 1]
                for _ in range(self.num_iter):
                    acc = torch.zeros_like(s)
                    for k, v in enumerate(_shifted(s, self.dilations, _OFFSETS8)):
                        acc.addcmul_(v, aff[b:b + 1, k:k + 1])
                    s = acc
                out[b:b + 1] = s
            return out
        P = max(self.dilations)
        Hp, Wp = H + 2 * P, W + 2 * P
        dy, dx = (list(t) for t in zip(*offsets))
        # a group of maps goes through all iterations while it stays in the CPU's cache (56 queries at 640 x 480:
        # 0.15 s all at once, 0.11 s in groups of 8-16), in two buffers alternated by the iterations, padded where
        # they lie: no allocation per iteration, and the same memory group after group
        group = max(4, _GROUP_BYTES // (Hp * Wp * scores.element_size()) // 4 * 4)
        flat = [scores.new_empty(min(group, C) * Hp * Wp) for _ in range(2)]
        for b in range(B):
            a = aff[b].contiguous()
            for c in range(0, C, group):
                n = min(group, C - c)
                x, spare = (f[:n * Hp * Wp].view(n, Hp, Wp) for f in flat)
                x[:, P:P + H, P:P + W] = scores[b, c:c + n]
                x[:, P:P + H, :P] = x[:, P:P + H, P:P + 1]  # replicate padding, written where it goes
                x[:, P:P + H, P + W:] = x[:, P:P + H, P + W - 1:P + W]
                x[:, :P] = x[:, P:P + 1]
                x[:, P + H:] = x[:, P + H - 1:P + H]
                for _ in range(self.num_iter):  # each step pads its output as it writes it
                    _step(x, a, dy, dx, spare)
                    x, spare = spare, x
                out[b, c:c + n] = x[:, P:P + H, P:P + W]
        return out

    def forward(self, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Args: image (B, K, H, W); scores (B, C, h, w), resized to (H, W). Returns (B, C, H, W)."""
        if scores.shape[-2:] != image.shape[-2:]:
            scores = F.interpolate(scores, size=image.shape[-2:], mode='bilinear', align_corners=True)
        return self.refine(scores, self.affinity(image))
