"""PAMR: pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP applies it.

The affinities are computed as the reference does (one shifted view at a time, in place, instead of 16 stacked
copies). The refinement ``s <- sum_n aff_n * s_n`` is linear with the same weights every iteration, so it is one
sparse matrix (:meth:`PAMR.operator`: a row per pixel of the padded grid, its 16 neighbours' weights) applied
``num_iter`` times to the scores laid out pixel-major: each iteration reads the scores and the weights once, where 16
shifted multiply-adds over the whole maps read them 16 times (the refinement is memory-bound: 10 iterations of ~30
classes at 640 x 427 are 2.6 GFLOP, and 16 GB of memory traffic that way). On the CPU the product is ovdense's own
kernel (``ovdense/csrc/sparse.cpp``, about 2x faster than torch's: no zero-filled output and copy per product, a row's
output in registers); elsewhere torch's. The sums are the reference's up to float rounding (the 16 terms added in
another order).
"""
from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

_GROUP_BYTES = 32 * 2 ** 20  # scores refined together by PAMR.refine (groups of 16-33 MB were the fastest here)

try:
    from ovdense import _ext  # registers torch.ops.ovdense.csr_mm
except ImportError as e:  # a checkout used without `pip install -e .`: said at the products on the CPU
    _ext, _EXT_ERROR = None, e

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


def _product(op: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``op @ y`` for a sparse CSR ``op`` (R, N) and dense ``y`` (N, C): ovdense's kernel for float32 on the CPU,
    written into ``out`` (R, C) when given (contiguous, not overlapping ``y``); elsewhere torch's (a new tensor)."""
    if y.device.type != 'cpu' or y.dtype != torch.float32 or op.values().dtype != torch.float32:
        return op @ y
    if _ext is None:
        warnings.warn(f'ovdense._ext is not built ({_EXT_ERROR}): PAMR uses torch\'s sparse product, about 2x slower; '
                      '`pip install --no-build-isolation -e .` in the checkout builds it')
        return op @ y
    if out is None:
        return torch.ops.ovdense.csr_mm(op.crow_indices(), op.col_indices(), op.values(), y)
    return torch.ops.ovdense.csr_mm.out(op.crow_indices(), op.col_indices(), op.values(), y, out=out)


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

    def operator(self, aff: torch.Tensor) -> list[torch.Tensor]:
        """The refinement step as sparse CSR matrices, one per image, from affinities (B, 16, H, W).

        They act on the scores replicate-padded by the largest dilation ``P``, pixel-major: ((H+2P)*(W+2P), C).
        The row of a pixel holds its 16 neighbours' weights (columns sorted and distinct: neighbours are fixed
        offsets on the padded grid); a padding pixel's row is the row of the image pixel it replicates, so the
        product is again the padded scores, ready for the next iteration.
        """
        B, K, H, W = aff.shape
        P = max(self.dilations)
        Hp, Wp = H + 2 * P, W + 2 * P
        offsets = [dy * d * Wp + dx * d for d in self.dilations for dy, dx in _OFFSETS8]
        order = sorted(range(K), key=offsets.__getitem__)
        dev = aff.device
        idx = torch.int32 if Hp * Wp * K < 2 ** 31 else torch.int64
        ys = (torch.arange(Hp, device=dev) - P).clamp_(0, H - 1)  # the image row / column each padded one copies
        xs = (torch.arange(Wp, device=dev) - P).clamp_(0, W - 1)
        centre = ((ys + P) * Wp).view(Hp, 1) + (xs + P).view(1, Wp)
        cols = (centre.to(idx).view(-1, 1) + torch.tensor(offsets, device=dev, dtype=idx)[order]).view(-1)
        crow = torch.arange(0, Hp * Wp * K + 1, K, device=dev, dtype=idx)
        vals = F.pad(aff[:, order], [P] * 4, mode='replicate').permute(0, 2, 3, 1).reshape(B, -1)  # rows as above
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is not
            warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
            return [torch.sparse_csr_tensor(crow, cols, vals[b], (Hp * Wp, Hp * Wp), check_invariants=False)
                    for b in range(B)]  # valid by construction (sorted, distinct columns; tested)

    def refine(self, scores: torch.Tensor, aff: torch.Tensor | list[torch.Tensor], *,
               inplace: bool = False) -> torch.Tensor:
        """Iterate ``s <- sum_n aff_n * s_n`` on scores (B, C, H, W), with affinities (B, 16, H, W) or their
        :meth:`operator` (build it once to refine several score chunks of one image). ``inplace``: write the
        refined scores into ``scores`` (and return it), whose values are spent anyway: one copy of the scores
        less at the peak."""
        B, C, H, W = scores.shape
        ops = self.operator(aff) if isinstance(aff, torch.Tensor) else aff
        P = max(self.dilations)
        # a group's scores are read into its own buffer before its refined scores are written: in place is safe
        out = scores if inplace else torch.empty_like(scores, memory_format=torch.contiguous_format)
        # the columns are independent: refined in groups whose scores stay in the CPU's cache across the iterations
        # (56 queries at 640 x 480, torch's product: 0.65 s in one group, 0.32 s in groups of 24)
        Hp, Wp = H + 2 * P, W + 2 * P
        rows = Hp * Wp
        # whole vectors of 8, at least 16: where even 8 columns miss the cache, fewer passes over the matrix
        group = max(16, _GROUP_BYTES // (rows * scores.element_size()) // 8 * 8)
        # two buffers for every group (the widest's size), alternated by the iterations: no allocation (and its page
        # faults) per product, and the same memory group after group
        flat = [scores.new_empty(rows * min(group, -(-C // 8) * 8)) for _ in range(2)]
        for b in range(B):
            for c in range(0, C, group):
                # pixel-major and replicate-padded: a row's neighbours are rows of y; zero columns up to whole
                # vectors of 8 (they stay zero; the products run on whole vectors: 21 columns as 24 is 2.5x faster)
                n = min(group, C - c)
                w = n + -n % 8
                y, spare = (f[:rows * w].view(rows, w) for f in flat)
                grid = y.view(Hp, Wp, w)
                grid[P:P + H, P:P + W, :n] = scores[b, c:c + n].permute(1, 2, 0)
                grid[P:P + H, :P, :n] = grid[P:P + H, P:P + 1, :n]  # replicate padding, written where it goes
                grid[P:P + H, P + W:, :n] = grid[P:P + H, P + W - 1:P + W, :n]
                grid[:P, :, :n] = grid[P:P + 1, :, :n]
                grid[P + H:, :, :n] = grid[P + H - 1:P + H, :, :n]
                grid[..., n:] = 0
                for _ in range(self.num_iter):
                    z = _product(ops[b], y, spare)
                    y, spare = z, (y if z is spare else spare)
                out[b, c:c + n] = y.view(Hp, Wp, w)[P:P + H, P:P + W, :n].permute(2, 0, 1)
        return out

    def forward(self, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Args: image (B, K, H, W); scores (B, C, h, w), resized to (H, W). Returns (B, C, H, W)."""
        if scores.shape[-2:] != image.shape[-2:]:
            scores = F.interpolate(scores, size=image.shape[-2:], mode='bilinear', align_corners=True)
        return self.refine(scores, self.affinity(image))
