"""Exact dense post-processing in pieces: bilinear resizing of a region, pixel tiles, class chunks, and
the softmax-over-queries rules of the training-free segmentors accumulated chunk by chunk.

Everything here is separable: a bilinear resize evaluated on a region only reads the source rows and
columns that region needs; the softmax over all text queries needs only a running maximum and sum per
pixel; synonym max-pooling, the argmax, the probability threshold and renormalisation are per pixel.
So a (Q, H, W) map never has to exist at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

_SLICE_BYTES = 8 * 2 ** 20  # resize_region's output resized at a time (its maps, whole)


def _axis(in_len: int, out_len: int, start: int, stop: int, *,
          align_corners: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and the weight of i1 for output positions ``start..stop`` of a linear
    resize from ``in_len`` to ``out_len`` samples, by PyTorch's ``upsample_bilinear2d`` rule (float32).

    The source coordinate ``scale * (dst + 0.5) - 0.5`` is rounded to float32 once, as ATen's CPU kernel
    computes it (one fused multiply-add): rounding the product first moves the weights by up to 1e-5 at a
    few hundred pixels, and the resized logits by up to 7e-5 (448x597 -> 480x640)."""
    if align_corners:
        scale = (in_len - 1) / (out_len - 1) if out_len > 1 else 0.0
        src = torch.arange(start, stop, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
    else:
        scale = (torch.tensor(float(in_len), dtype=torch.float32) / float(out_len)).double()
        dst = torch.arange(start, stop, dtype=torch.float64)
        src = ((dst + 0.5) * scale - 0.5).float().clamp_min(0.0)  # exact in float64, then one rounding
    i0 = src.floor().long().clamp_max(in_len - 1)
    w1 = (src - i0.float()).clamp(0.0, 1.0)
    i1 = torch.where(i0 < in_len - 1, i0 + 1, i0)
    return i0, i1, w1


def source_span(in_len: int, out_len: int, start: int, stop: int, *, align_corners: bool = False) -> tuple[int, int]:
    """[a, b): the source samples that output positions ``start..stop`` of a linear resize read."""
    if in_len == out_len:
        return start, stop
    i0, i1, _ = _axis(in_len, out_len, start, stop, align_corners=align_corners)
    return int(i0.min()), int(i1.max()) + 1


def resize_region(x: torch.Tensor, full: tuple[int, int], size: tuple[int, int],
                  region: tuple[int, int, int, int], *, offset: tuple[int, int] = (0, 0),
                  align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of a ``full``-sized map to ``size``, evaluated on ``region`` only.

    Equal to ``F.interpolate(whole, size, mode='bilinear', align_corners=...)[..., y1:y2, x1:x2]`` up to
    float rounding (within 1e-6 of it on unit-scale maps), and bit-identical however the output is split
    into regions. The columns are interpolated first, as ATen does.

    Args:
        x: (..., h, w) the part of the full source map starting at ``offset``; it must hold every source
            sample the region reads (:func:`source_span`).
        full: (H_in, W_in) size of the whole source map.
        size: (H_out, W_out) size of the whole resized map.
        region: (y1, x1, y2, x2) in output pixels.
        offset: (row, col) of ``x``'s first sample in the full source map.

    Returns:
        (..., y2 - y1, x2 - x1).
    """
    y1, x1, y2, x2 = region
    oy, ox = offset
    passes = []  # (dim, i0, i1, w1) of each resized axis, columns first as ATen; equal sizes are narrowed
    for dim, (n_in, n_out, a, b, o) in ((-1, (full[1], size[1], x1, x2, ox)), (-2, (full[0], size[0], y1, y2, oy))):
        if n_in == n_out:
            x = x.narrow(dim, a - o, b - a)
            continue
        i0, i1, w1 = _axis(n_in, n_out, a, b, align_corners=align_corners)
        passes.append((dim, (i0 - o).to(x.device), (i1 - o).to(x.device), w1.to(device=x.device, dtype=x.dtype)))
    if not passes:
        return x if x.stride(-1) == 1 else x.contiguous()
    lead, (h, w) = x.shape[:-2], (y2 - y1, x2 - x1)
    flat = x.reshape(-1, *x.shape[-2:])
    # a few maps at a time into the output: the passes' temporaries (two gathers each) stay a few _SLICE_BYTES
    # instead of three times the output (56 queries at 480x640: 1.2-1.6x, 0.1 GB less at the peak)
    step = max(1, _SLICE_BYTES // max(h * w * x.element_size(), 1))
    out = None if 0 < flat.shape[0] <= step else x.new_empty((flat.shape[0], h, w))
    for s in range(0, flat.shape[0], step):
        part = flat[s:s + step]
        for dim, i0, i1, w1 in passes:
            # columns are gathered as the rows of the transposed view (the output then comes out transposed and
            # the row pass below reads it as it lies): 1.3x faster than indexing the last dimension, 4x than
            # index_select (56 queries, 448x597 -> 480x640); the same values bit for bit
            src = part if dim == -2 else part.transpose(-1, -2)
            x0, x1_ = src[..., i0, :], src[..., i1, :]
            part = x0.addcmul_(x1_.sub_(x0), w1[:, None])  # x0 + w1 * (x1 - x0)
            if dim == -1:
                part = part.transpose(-1, -2)
        if out is None:  # one slice: no copy; columns-only (rows narrowed): row-major as callers expect
            return (part if part.stride(-1) == 1 else part.contiguous()).reshape(*lead, h, w)
        out[s:s + step] = part
    return out.view(*lead, h, w)


def resize_matrix(in_len: int, out_len: int, start: int, stop: int, *, offset: int = 0,
                  width: int | None = None, align_corners: bool = False) -> torch.Tensor:
    """(stop - start, width) float64 matrix of a linear resize from ``in_len`` to ``out_len`` samples: rows
    ``start..stop``, the source columns ``offset..offset + width`` (default: all, which must hold every sample the
    rows read): two weights per row (:func:`_axis`, ATen's rule); the identity's rows when the sizes match."""
    width = in_len - offset if width is None else width
    rows = torch.arange(stop - start)
    m = torch.zeros(stop - start, width, dtype=torch.float64)
    if in_len == out_len:
        return m.index_put_((rows, rows + (start - offset)), torch.ones((), dtype=torch.float64))
    i0, i1, w1 = _axis(in_len, out_len, start, stop, align_corners=align_corners)
    w1 = w1.double()
    m.index_put_((rows, i0 - offset), 1 - w1, accumulate=True)
    return m.index_put_((rows, i1 - offset), w1, accumulate=True)


def stitch_operator(spans: Sequence[tuple[int, int]], patches: int, size: int, pad: int, in_len: int,
                    out_len: int, start: int, stop: int) -> torch.Tensor:
    """One axis of sliding-window stitching as matrices: (G, stop - start, patches) float64, one per window span.

    The windows cover ``spans`` [a, b) of an axis of ``in_len`` input samples; each window's ``patches`` patch
    logits are bilinearly upsampled to its padded ``size`` (its first input sample at ``pad``), summed where
    windows overlap, divided by how many cover the sample, and resized to ``out_len``; rows ``start..stop`` of
    the result. On a grid of windows (every row span with every column span) the stitched logits are
    ``sum_ij R[i] @ X_ij @ C[j].T``, ``X_ij`` the patch logits of window (i, j) and ``R``/``C`` this operator of
    the rows/columns: the per-window recipe (:func:`resize_region` per window, then over the image) up to float
    rounding, in two matrix products whose only full-size write is their output.
    """
    a0, b0 = source_span(in_len, out_len, start, stop)
    final = resize_matrix(in_len, out_len, start, stop, offset=a0, width=b0 - a0)  # only the span's columns
    stitched = torch.zeros(len(spans), b0 - a0, patches, dtype=torch.float64)
    count = torch.zeros(b0 - a0, 1, dtype=torch.float64)
    for g, (a, b) in enumerate(spans):
        lo, hi = max(a, a0), min(b, b0)
        if lo < hi:
            stitched[g, lo - a0:hi - a0] = resize_matrix(patches, size, lo - a + pad, hi - a + pad)
            count[lo - a0:hi - a0] += 1
    if not count.all():
        raise ValueError(f'the window spans {list(spans)} leave input samples of [{a0}, {b0}) uncovered')
    return final @ (stitched / count)


def _query_slices(logits: torch.Tensor) -> list[tuple[int, int]]:
    """[a, b) ranges of the queries of ``logits`` (q, h, w) holding about _SLICE_BYTES of float32 maps each."""
    step = max(1, _SLICE_BYTES // max(logits[0].numel() * 4, 1))
    return [(a, min(a + step, logits.shape[0])) for a in range(0, logits.shape[0], step)]


def tiles(height: int, width: int, tile: tuple[int, int]) -> Iterator[tuple[int, int, int, int]]:
    """Row-major tiles (y1, x1, y2, x2) of at most ``tile`` = (th, tw) pixels covering the image."""
    th, tw = tile
    for y in range(0, height, th):
        for x in range(0, width, tw):
            yield y, x, min(y + th, height), min(x + tw, width)


def expand(region: tuple[int, int, int, int], halo: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``region`` grown by ``halo`` pixels on every side, clipped to the image."""
    y1, x1, y2, x2 = region
    return max(y1 - halo, 0), max(x1 - halo, 0), min(y2 + halo, height), min(x2 + halo, width)


def class_chunks(query_to_class: torch.Tensor, max_queries: int) -> list[tuple[int, int, int, int]]:
    """Split the queries into chunks of whole classes (a class's synonyms stay together).

    Args:
        query_to_class: (Q,) class of each query, non-decreasing (as :class:`Vocabulary` orders them).
        max_queries: at most this many queries per chunk (a class with more synonyms gets its own chunk).

    Returns:
        per chunk (q_start, q_end, c_start, c_end).
    """
    q2c = query_to_class.tolist()
    if any(b < a for a, b in zip(q2c, q2c[1:])):
        raise ValueError('query_to_class must be non-decreasing (the synonyms of a class next to each other)')
    ends = [i for i in range(1, len(q2c)) if q2c[i] != q2c[i - 1]] + [len(q2c)]
    chunks, q0, last = [], 0, 0  # last: the latest class end inside the open chunk
    for end in ends:
        if end - q0 > max_queries and last > q0:
            chunks.append((q0, last))
            q0 = last
        last = end
    chunks.append((q0, len(q2c)))
    return [(a, b, q2c[a], q2c[b - 1] + 1) for a, b in chunks]


@dataclass
class ChunkPlan:
    """How an image is cut for bounded-memory post-processing.

    Attributes:
        tile: (th, tw) output pixels per tile.
        halo: extra pixels computed around each tile (PAMR's reach), then discarded.
        chunks: per class chunk (q_start, q_end, c_start, c_end).
    """
    tile: tuple[int, int]
    halo: int
    chunks: list[tuple[int, int, int, int]]


def plan_chunks(query_to_class: torch.Tensor, out_hw: tuple[int, int], *, budget: int, halo: int = 0,
                bytes_per_px: int = 32, bytes_per_query_px: int = 20, tile: int | None = None,
                max_queries: int | None = None) -> ChunkPlan:
    """Pick tile and chunk sizes so that the working buffers stay within ``budget`` bytes.

    Half of the budget goes to per-pixel buffers of a tile with its halo (``bytes_per_px``: running
    statistics, affinities), half to the per-query buffers of one class chunk on that region
    (``bytes_per_query_px``). ``tile`` / ``max_queries`` override the computed sizes (tests, tuning).
    """
    H, W = out_hw
    Q = int(query_to_class.numel())
    if tile is None:
        # largest square tile (plus halo) whose per-pixel buffers fit half of the budget
        side = int(math.isqrt(max(budget // 2 // bytes_per_px, 1)))
        tile = max(side - 2 * halo, 32)
    th, tw = min(tile, H), min(tile, W)
    if tile < H and tile >= W:  # a thin image: give the tile the rows the columns leave free
        th = min(H, max(tile * tile // max(W, 1), 1))
    elif tile < W and tile >= H:
        tw = min(W, max(tile * tile // max(H, 1), 1))
    ext = (min(th + 2 * halo, H)) * (min(tw + 2 * halo, W))
    if max_queries is None:
        max_queries = max(budget // 2 // (bytes_per_query_px * ext), 1)
    return ChunkPlan(tile=(th, tw), halo=halo, chunks=class_chunks(query_to_class, min(max_queries, Q)))


class SoftmaxReducer:
    """Per-pixel softmax over text queries, synonym max-pooling and argmax, accumulated over class chunks.

    Exactly what ``softmax(scale * logits, queries)`` -> max over each class's synonyms -> argmax gives on
    the whole (Q, h, w) map, from chunks of whole classes seen one at a time: the best class logit and its
    class (the softmax is monotonic, so the argmax needs no exponential), and only when probabilities are
    needed a running maximum ``m`` and sum ``s`` of ``exp(scale * l - m)`` over all queries, and the sum
    of class probabilities over the kept classes (for renormalisation).

    Args:
        shape: (h, w) pixels of the tile.
        scale: logit scale before the softmax.
        probs: keep the softmax statistics (for ``top_prob`` and ``probs``).
        renormalize: also keep the sum of class probabilities (``probs(renormalize=True)``).
        device: where the buffers live.
    """

    def __init__(self, shape: Sequence[int], scale: float, *, probs: bool = True, renormalize: bool = False,
                 device: torch.device | str = 'cpu') -> None:
        shape = tuple(shape)
        self.scale = scale
        self.track = probs
        self.m = torch.full(shape, float('-inf'), device=device) if probs else None
        self.s = torch.zeros(shape, device=device) if probs else None
        self.sc = torch.zeros(shape, device=device) if probs and renormalize else None
        self.best = torch.full(shape, float('-inf'), device=device)
        self.label = torch.zeros(shape, dtype=torch.long, device=device)

    def class_logits(self, logits: torch.Tensor, q2c: torch.Tensor, c0: int, c1: int,
                     bias: float = 0.0) -> torch.Tensor:
        """(c1 - c0, h, w) logit of each class of the chunk: the max over its synonyms of ``scale * l + bias``, from
        ``logits`` (q, h, w) scaled a few queries at a time, never all at once (the max is exact in any order)."""
        if c1 - c0 == logits.shape[0]:  # one query per class
            z = logits.float() * self.scale
            return z.add_(bias) if bias else z
        q2c = q2c.cpu()
        if self.scale > 0 and bool((q2c[1:] >= q2c[:-1]).all()):
            # each class's synonyms are consecutive: max over them first, then scale; the same values bit for bit
            # (x -> scale * x + bias rounds monotonically for a positive scale), a pass over the q maps instead of four
            out = logits.new_empty((c1 - c0, *logits.shape[1:]), dtype=torch.float32)
            counts = torch.bincount(q2c - c0, minlength=c1 - c0).tolist()
            start = 0
            for c, n in enumerate(counts):
                if n == 0:
                    out[c] = float('-inf')
                elif n == 1:
                    out[c] = logits[start]
                else:
                    torch.amax(logits[start:start + n].float(), 0, out=out[c])
                start += n
            out.mul_(self.scale)
            return out.add_(bias) if bias else out
        out = logits.new_full((c1 - c0, *logits.shape[1:]), float('-inf'), dtype=torch.float32)
        idx = (q2c - c0).to(logits.device)
        for a, b in _query_slices(logits):
            z = logits[a:b].float() * self.scale
            out.scatter_reduce_(0, idx[a:b].view(-1, 1, 1).expand_as(z), z.add_(bias) if bias else z, reduce='amax')
        return out

    def update(self, logits: torch.Tensor, q2c: torch.Tensor, c0: int, c1: int,
               keep: torch.Tensor | None = None) -> None:
        """Add a chunk: ``logits`` (q, h, w) of queries whose classes ``q2c`` (q,) are ``c0..c1-1``;
        ``keep`` (c1 - c0,) bool: classes still allowed (area rule), None: all.

        The scaled logits are made a few queries at a time (twice: for the class maxima, then for the
        exponentials), never all at once: the chunk's own size less at the peak."""
        cl = self.class_logits(logits, q2c, c0, c1)
        m = torch.maximum(self.m, cl.amax(0)) if self.track else None  # the max over all queries
        cl = self._argmax(cl, c0, keep)
        if self.track:
            rescale = torch.exp(self.m - m)
            if self.sc is not None:
                self.sc.mul_(rescale).add_(torch.exp(cl - m).sum(0))
            total = torch.zeros_like(self.s)
            for a, b in _query_slices(logits):
                total.add_((logits[a:b].float() * self.scale).sub_(m).exp_().sum(0))
            self.s.mul_(rescale).add_(total)
            self.m = m

    def _argmax(self, cl: torch.Tensor, c0: int, keep: torch.Tensor | None) -> torch.Tensor:
        """Fold a chunk's class logits (c1 - c0, h, w) into the running best class; returns them with the classes
        not kept set to -inf (in place)."""
        if keep is not None:
            cl.index_fill_(0, (~keep).nonzero().flatten().to(cl.device), float('-inf'))
        value, index = cl.max(0)
        better = value > self.best  # strict: ties keep the earlier class, as one argmax over all would
        self.best = torch.where(better, value, self.best)
        self.label = torch.where(better, index + c0, self.label)
        return cl

    def top_prob(self) -> torch.Tensor:
        """(h, w) probability of the winning class (before renormalisation)."""
        return torch.exp(self.best - self.m) / self.s

    def probs(self, logits: torch.Tensor, q2c: torch.Tensor, c0: int, c1: int, keep: torch.Tensor | None = None,
              *, renormalize: bool = False, pixels: tuple[slice, slice] = (slice(None), slice(None))) -> torch.Tensor:
        """(c1 - c0, h', w') class probabilities of a chunk, once every chunk has been added; ``logits``
        (q, h', w') are those of the tile's ``pixels`` (row and column slices)."""
        cl = self.class_logits(logits, q2c, c0, c1)
        p = torch.exp(cl - self.m[pixels]) / (self.sc if renormalize else self.s)[pixels]
        if keep is not None:
            p = p * keep.to(p.device, p.dtype).view(-1, 1, 1)
        return p


class SigmoidReducer(SoftmaxReducer):
    """:class:`SoftmaxReducer` for a sigmoid match (SigLIP): each class's probability is
    ``sigmoid(scale * l + bias)`` of its best synonym, on its own (no normaliser over the vocabulary); the
    argmax is the same as the softmax's. With ``renormalize`` the sum of the kept classes' probabilities is
    kept (``probs(renormalize=True)``).
    """

    def __init__(self, shape: Sequence[int], scale: float, bias: float = 0.0, *, probs: bool = True,
                 renormalize: bool = False, device: torch.device | str = 'cpu') -> None:
        super().__init__(shape, scale, probs=False, device=device)  # no softmax statistics
        self.bias = float(bias)
        self.sc = torch.zeros(tuple(shape), device=device) if probs and renormalize else None

    def update(self, logits: torch.Tensor, q2c: torch.Tensor, c0: int, c1: int,
               keep: torch.Tensor | None = None) -> None:
        cl = self._argmax(self.class_logits(logits, q2c, c0, c1, self.bias), c0, keep)
        if self.sc is not None:
            self.sc.add_(torch.sigmoid(cl).sum(0))

    def top_prob(self) -> torch.Tensor:
        return torch.sigmoid(self.best)

    def probs(self, logits: torch.Tensor, q2c: torch.Tensor, c0: int, c1: int, keep: torch.Tensor | None = None,
              *, renormalize: bool = False, pixels: tuple[slice, slice] = (slice(None), slice(None))) -> torch.Tensor:
        p = torch.sigmoid(self.class_logits(logits, q2c, c0, c1, self.bias))
        if keep is not None:
            p = p * keep.to(p.device, p.dtype).view(-1, 1, 1)
        return p / self.sc[pixels] if renormalize else p


def resize_argmax(logits: torch.Tensor, size: tuple[int, int], *, budget: int, align_corners: bool = False,
                  return_logits: bool = False, tile: int | None = None,
                  max_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels of ``logits`` (C, h, w) bilinearly resized to ``size``, tile by tile and chunk by chunk
    over classes (a running maximum; ties keep the lower class, as ``argmax`` does).

    Returns:
        label (1, H, W) int64 and, if ``return_logits``, the resized logits (C, H, W) (else None).
    """
    C, h, w = logits.shape
    H, W = size
    plan = plan_chunks(torch.arange(C), size, budget=budget, bytes_per_px=16, bytes_per_query_px=12,
                       tile=tile, max_queries=max_classes)
    label = torch.zeros((1, H, W), dtype=torch.long, device=logits.device)
    full = logits.new_empty((C, H, W)) if return_logits else None
    for region in tiles(H, W, plan.tile):
        y1, x1, y2, x2 = region
        ya, yb = source_span(h, H, y1, y2, align_corners=align_corners)
        xa, xb = source_span(w, W, x1, x2, align_corners=align_corners)
        best = logits.new_full((y2 - y1, x2 - x1), float('-inf'))
        lab = torch.zeros((y2 - y1, x2 - x1), dtype=torch.long, device=logits.device)
        for c0, c1, _, _ in plan.chunks:
            part = resize_region(logits[c0:c1, ya:yb, xa:xb], (h, w), size, region, offset=(ya, xa),
                                 align_corners=align_corners)
            if full is not None:
                full[c0:c1, y1:y2, x1:x2] = part
            value, index = part.max(0)
            better = value > best
            best = torch.where(better, value, best)
            lab = torch.where(better, index + c0, lab)
        label[0, y1:y2, x1:x2] = lab
    return label, full


class ChunkedPostprocessMixin:
    """mmseg segmentors' ``postprocess_result`` in bounded memory: the padding is removed and flips are
    undone as mmseg does, then the logits are resized to ``ori_shape`` and arg-maxed tile by tile
    (:func:`resize_argmax`), so no (C, H0, W0) map exists unless ``test_cfg.return_logits`` asks for
    ``seg_logits``. Budget: ``test_cfg.memory_budget`` bytes (default 1 GiB). One-channel (sigmoid)
    heads keep mmseg's own post-processing."""

    def postprocess_result(self, seg_logits: torch.Tensor, data_samples: list | None = None) -> list:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        if seg_logits.shape[1] == 1:
            return super().postprocess_result(seg_logits, data_samples)
        cfg = self.test_cfg or {}
        want_logits = bool(cfg.get('return_logits', False))
        budget = int(cfg.get('memory_budget', 1 << 30))
        B, C, H, W = seg_logits.shape
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(B)]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            logits = seg_logits[i]
            size = tuple(meta['ori_shape'][:2]) if 'ori_shape' in meta else (H, W)
            if meta:
                left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
                logits = logits[:, top:H - bottom, left:W - right]
                if meta.get('flip'):
                    logits = logits.flip(dims=(2,) if meta.get('flip_direction') == 'horizontal' else (1,))
            label, full = resize_argmax(logits, size, budget=budget, align_corners=self.align_corners,
                                        return_logits=want_logits)
            sample.set_data(dict(pred_sem_seg=PixelData(data=label)))
            if full is not None:
                sample.set_data(dict(seg_logits=PixelData(data=full)))
        return data_samples
