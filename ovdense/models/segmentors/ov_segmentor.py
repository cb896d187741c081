"""Training-free open-vocabulary semantic segmentation with a dense CLIP backbone."""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS as MMSEG_MODELS

from ...progress import ProgressFn
from ...registry import register
from ...clip import CLIPModel
from ..text import TextSideMixin, build_text_encoder
from ..utils import PAMR, slide_windows
from ..utils.chunked import (SigmoidReducer, SoftmaxReducer, expand, plan_chunks, resize_region, source_span,
                             stitch_operator, tiles)

WINDOW_PADDING = ('none', 'symmetric')
ACTIVATIONS = ('softmax', 'sigmoid')


class _Window(NamedTuple):
    """A sliding window's normalised patch features (D, h, w), its box (y1, x1, y2, x2) in the image,
    its padded size and its (top, left) padding."""
    box: tuple[int, int, int, int]
    feats: torch.Tensor
    size: tuple[int, int]
    pad: tuple[int, int]


def _window_grid(windows: Sequence[_Window]) -> tuple[list[tuple[int, int]], list[tuple[int, int]],
                                                        list[list[_Window]]] | None:
    """Row spans, column spans and the windows by (row, column) when ``windows`` are every row span with every
    column span, all of one size and padding; else None."""
    rows = sorted({(w.box[0], w.box[2]) for w in windows})
    cols = sorted({(w.box[1], w.box[3]) for w in windows})
    by_box = {w.box: w for w in windows}
    if len(by_box) != len(windows) or len(rows) * len(cols) != len(windows) or \
            len({(w.size, w.pad, w.feats.shape) for w in windows}) != 1:
        return None
    try:
        return rows, cols, [[by_box[(a, c, b, d)] for c, d in cols] for a, b in rows]
    except KeyError:
        return None


@register('MODELS', mmdet=False)
class OVSegmentor(TextSideMixin, BaseSegmentor):
    """Segment images into the classes of a vocabulary by patch-text cosine similarity.

    Pipeline: per window (or the whole image) the backbone's normalised patch embeddings are
    matched with the vocabulary's text embeddings (cosine), upsampled bilinearly to the window,
    averaged over overlapping windows, resized to the original image size, optionally refined by
    PAMR, then turned into class probabilities: ``softmax(logit_scale * cos)`` over the text
    queries (or, ``activation='sigmoid'``, SigLIP's ``sigmoid(logit_scale * cos + logit_bias)`` of each
    query on its own), max over each class's synonyms, optional area rule, argmax, and pixels whose top
    probability is below ``prob_thd`` get ``background_index``. The argmax is the same either way; the
    probabilities (``prob_thd``, ``return_probs``) are not.

    Memory is bounded by ``memory_budget``, exactly: the features stay at patch resolution and every
    later step runs tile by tile over output pixels and chunk by chunk over classes
    (:meth:`segment_image`); only the labels (and probabilities when asked for) exist at full size.

    Args:
        backbone: config of an :class:`OVCLIPViT` (or any module with ``dense_features`` and ``clip``).
        text_encoder: config of the :class:`~ovdense.models.text.OVTextEncoder` (vocabulary, templates,
            synonym rule, cache): the text side, embedded with the backbone's CLIP.
        logit_scale: multiplier of the cosine logits before the activation; None: the CLIP's own
            (``exp(logit_scale)``).
        activation: ``'softmax'`` over the vocabulary's queries (CLIP) or ``'sigmoid'`` per query (SigLIP).
        logit_bias: ``'sigmoid'``: added to the scaled logits; None: the CLIP's own (SigLIP's learnt bias;
            0 for a CLIP without one).
        prob_thd: pixels whose top class probability is below it get ``background_index``.
        area_thd: SCLIP's area rule: classes other than ``background_index`` whose argmax area is at
            most this fraction of the total foreground area get probability 0. None: off.
        background_index: the class low-confidence pixels fall back to.
        slide_crop: window side (0: one forward on the whole image).
        slide_stride: window stride.
        window_batch: windows per backbone forward.
        window_padding: ``'symmetric'`` zero-pads windows to a multiple of ``window_pad_multiple``
            (ClearCLIP, ProxyCLIP); ``'none'`` lets the patch conv drop leftover pixels.
        window_pad_multiple: the multiple of ``'symmetric'`` padding (None: the patch size; ProxyCLIP 56).
        pamr: ``dict(num_iter=10, dilations=(8, 16))`` to refine with PAMR, or None.
        renormalize: renormalise class probabilities to sum to 1 after the argmax (NACLIP).
        memory_budget: bytes for the working buffers of the post-processing (tiles x class chunks).
        return_probs: also output class probabilities (``seg_logits`` in mmseg's data samples); they
            are (C, H, W) floats at full size, so off by default.
        probs_stride: probabilities at every ``probs_stride``-th pixel of each axis only.
        tile_size: output tile side in pixels (None: from ``memory_budget``).
        chunk_queries: text queries per class chunk (None: from ``memory_budget``).
        data_preprocessor: mmseg data preprocessor config.
        init_cfg: mmengine init config.
    """

    training_free = True  # CLIP weights are all it needs

    def __init__(self, backbone: dict, text_encoder: dict | None = None, *, logit_scale: float | None = 40.0,
                 activation: str = 'softmax', logit_bias: float | None = None, prob_thd: float = 0.0,
                 area_thd: float | None = None,
                 background_index: int = 0, slide_crop: int = 224, slide_stride: int = 112,
                 window_batch: int = 8, window_padding: str = 'none', window_pad_multiple: int | None = None,
                 pamr: dict | None = None,
                 renormalize: bool = False, memory_budget: int = 1 << 30, return_probs: bool = False,
                 probs_stride: int = 1, tile_size: int | None = None, chunk_queries: int | None = None,
                 data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; valid: {list(ACTIVATIONS)}")
        if logit_bias is not None and activation != 'sigmoid':
            raise ValueError(f"logit_bias is for activation='sigmoid' (a softmax ignores it), got activation "
                             f"'{activation}'")
        if window_padding not in WINDOW_PADDING:
            raise ValueError(f"unknown window_padding '{window_padding}'; valid: {list(WINDOW_PADDING)}")
        if slide_crop > 0 and slide_stride <= 0:
            raise ValueError(f'slide_stride must be positive with slide_crop={slide_crop}')
        self.backbone = MMSEG_MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        self.text_encoder = build_text_encoder(text_encoder)
        self.logit_scale = None if logit_scale is None else float(logit_scale)
        self.activation = activation
        self.logit_bias = None if logit_bias is None else float(logit_bias)
        self.prob_thd = float(prob_thd)
        self.area_thd = area_thd
        self.background_index = background_index
        self.slide_crop = slide_crop
        self.slide_stride = slide_stride
        self.window_batch = window_batch
        self.window_padding = window_padding
        self.window_pad_multiple = window_pad_multiple
        self.pamr = PAMR(**pamr) if pamr else None
        self.renormalize = renormalize
        if memory_budget <= 0 or probs_stride < 1 or (tile_size is not None and tile_size < 1) or (
                chunk_queries is not None and chunk_queries < 1):
            raise ValueError(f'memory_budget, probs_stride, tile_size and chunk_queries must be positive, got '
                             f'{memory_budget}, {probs_stride}, {tile_size}, {chunk_queries}')
        self.memory_budget = int(memory_budget)
        self.return_probs = return_probs
        self.probs_stride = probs_stride
        self.tile_size = tile_size
        self.chunk_queries = chunk_queries

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.clip

    def match(self) -> tuple[float, float]:
        """(scale, bias) of the text match in use: the configured ones, or the CLIP's own where None."""
        clip = self.text_clip
        scale = self.logit_scale if self.logit_scale is not None else float(clip.logit_scale.detach().float().exp())
        if self.activation == 'softmax':
            return scale, 0.0
        bias = self.logit_bias if self.logit_bias is not None else clip.logit_bias
        return scale, float(bias.detach().float()) if isinstance(bias, torch.Tensor) else float(bias or 0.0)

    def reducer(self, shape: Sequence[int], *, probs: bool = True, renormalize: bool = False,
                device: torch.device | str = 'cpu', match: tuple[float, float] | None = None) -> SoftmaxReducer:
        """The per-pixel accumulator of the activation in use (:class:`SoftmaxReducer` / :class:`SigmoidReducer`),
        with ``match`` (scale, bias) or :meth:`match`."""
        scale, bias = match if match is not None else self.match()
        if self.activation == 'sigmoid':
            return SigmoidReducer(shape, scale, bias, probs=probs, renormalize=renormalize, device=device)
        return SoftmaxReducer(shape, scale, probs=probs, renormalize=renormalize, device=device)

    # --------------------------------------------------------------- inference
    def patch_logits(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(n, Q, h, w) cosine similarities of patches and queries for (n, 3, H, W) images."""
        feats = self._dense(images, text)
        return torch.einsum('ndhw,qd->nqhw', feats, text.to(feats.dtype))

    def _dense(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(n, D, h, w) normalised patch features; the queries (Q, D) reach methods that read the vocabulary."""
        if getattr(self.backbone, 'needs_text', False):
            return self.backbone.dense_features(images, normalize=True, text=text)
        return self.backbone.dense_features(images, normalize=True)

    def _window_pad(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding of a window: to a multiple of the patch size
        (``'symmetric'``), else only a side shorter than one patch, up to one patch (symmetric, as
        ClearCLIP pads), so that thin windows still have a patch row and column."""
        p = self.backbone.patch_size
        if self.window_padding == 'symmetric':
            m = self.window_pad_multiple or p
            ph, pw = -height % m, -width % m
        else:
            ph, pw = max(p - height, 0), max(p - width, 0)
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2

    def window_features(self, image: torch.Tensor, text: torch.Tensor, *,
                        progress: ProgressFn | None = None) -> list[_Window]:
        """Normalised patch features of every sliding window of one image (3, H, W): what the logits of
        any query and any pixel are computed from (patch resolution; independent of the vocabulary ``text``
        (Q, D) unless the method reads it). ``progress`` gets ``('windows', done, total)`` after each window
        batch."""
        H, W = image.shape[-2:]
        boxes = slide_windows(H, W, self.slide_crop, self.slide_stride) if self.slide_crop > 0 else [(0, 0, H, W)]
        out = []
        for i in range(0, len(boxes), self.window_batch):  # windows of one image all have the same size
            chunk = boxes[i:i + self.window_batch]
            y1, x1, y2, x2 = chunk[0]
            pad = self._window_pad(y2 - y1, x2 - x1)
            crops = F.pad(torch.stack([image[:, a:c, b:d] for a, b, c, d in chunk]), pad)
            feats = self._dense(crops, text)
            out += [_Window(box, f, crops.shape[-2:], (pad[2], pad[0])) for box, f in zip(chunk, feats)]
            if progress is not None:
                progress('windows', len(out), len(boxes))
        return out

    @staticmethod
    def window_logits(windows: Sequence[_Window], text: torch.Tensor, region: tuple[int, int, int, int]) -> torch.Tensor:
        """(Q, y2 - y1, x2 - x1) cosine logits on ``region`` of the (input-resolution) image: each window's
        patch logits bilinearly upsampled to its (padded) size, averaged where windows overlap."""
        ry1, rx1, ry2, rx2 = region
        feats = windows[0].feats
        out = feats.new_zeros((text.shape[0], ry2 - ry1, rx2 - rx1))
        count = feats.new_zeros((1, ry2 - ry1, rx2 - rx1))
        for win in windows:
            y1, x1, y2, x2 = win.box
            a, b, c, d = max(y1, ry1), max(x1, rx1), min(y2, ry2), min(x2, rx2)
            if a >= c or b >= d:
                continue
            patch = torch.einsum('dhw,qd->qhw', win.feats, text.to(win.feats.dtype))
            pt, pl = win.pad
            lg = resize_region(patch, patch.shape[-2:], win.size, (a - y1 + pt, b - x1 + pl, c - y1 + pt, d - x1 + pl))
            out[:, a - ry1:c - ry1, b - rx1:d - rx1] += lg
            count[:, a - ry1:c - ry1, b - rx1:d - rx1] += 1
        return out / count

    def encode_image(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(Q, H, W) cosine logits at input resolution for one normalised image (3, H, W)."""
        H, W = image.shape[-2:]
        return self.window_logits(self.window_features(image, text), text, (0, 0, H, W))

    def _region_logits(self, windows: Sequence[_Window], text: torch.Tensor, in_hw: tuple[int, int],
                       out_hw: tuple[int, int], region: tuple[int, int, int, int]) -> torch.Tensor:
        """(Q, y2 - y1, x2 - x1) logits on ``region`` of the output (``ori_shape``) image: the window
        logits of just the input pixels it reads, bilinearly resized.

        Windows on a grid (as :func:`slide_windows` lays them out) are stitched and resized by two matrix
        products (:func:`stitch_operator`): the per-window recipe's values up to float rounding (1.2e-7 on
        cosine logits in the tests), with no intermediate map at input resolution; other layouts window by
        window (:meth:`window_logits`)."""
        grid = _window_grid(windows)
        if grid is not None:
            return self._grid_logits(grid, text, in_hw, out_hw, region)
        ya, yb = source_span(in_hw[0], out_hw[0], region[0], region[2])
        xa, xb = source_span(in_hw[1], out_hw[1], region[1], region[3])
        src = self.window_logits(windows, text, (ya, xa, yb, xb))
        return resize_region(src, in_hw, out_hw, region, offset=(ya, xa))

    @staticmethod
    def _grid_logits(grid: tuple[list[tuple[int, int]], list[tuple[int, int]], list[list[_Window]]],
                     text: torch.Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int],
                     region: tuple[int, int, int, int]) -> torch.Tensor:
        """:meth:`_region_logits` of windows on a grid (:func:`_window_grid`): ``R X C.T`` summed over the
        windows whose rows and columns the region reads (``R``, ``C``: :func:`stitch_operator`)."""
        rows, cols, wins = grid
        first = wins[0][0]
        (h, w), dt, dev = first.feats.shape[-2:], first.feats.dtype, first.feats.device
        ops = [stitch_operator(spans, n, size, pad, i, o, a, b) for spans, n, size, pad, i, o, a, b in (
            (rows, h, first.size[0], first.pad[0], in_hw[0], out_hw[0], region[0], region[2]),
            (cols, w, first.size[1], first.pad[1], in_hw[1], out_hw[1], region[1], region[3]))]
        ri, ci = ([g for g in range(len(op)) if op[g].any()] for op in ops)  # the windows the region reads
        r, c = (op[keep].permute(1, 0, 2).reshape(op.shape[1], -1).to(dev, dt) for op, keep in zip(ops, (ri, ci)))
        feats = torch.stack([torch.stack([wins[i][j].feats for j in ci]) for i in ri])  # (I, J, D, h, w)
        x = torch.einsum('ijdhw,qd->qihjw', feats, text.to(dt)).reshape(text.shape[0], len(ri) * h, len(ci) * w)
        (th, kh), (tw, kw) = r.shape, c.shape
        if kh * kw * tw + th * kh * tw <= th * kh * kw + th * kw * tw:  # the cheaper order of the two products
            return r @ (x @ c.T)
        return (r @ x) @ c.T

    def postprocess(self, logits: torch.Tensor, query_to_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine logits (Q, H, W) of the whole image -> class probabilities (C, H, W) and labels (1, H, W)."""
        num_classes = int(query_to_class.max()) + 1
        keep = None
        for _ in range(2):  # a second round only when the area rule removes a class
            red = self.reducer(logits.shape[1:], renormalize=self.renormalize, device=logits.device)
            red.update(logits, query_to_class, 0, num_classes, keep)
            if self.area_thd is None or keep is not None:
                break
            keep = self._area_keep(torch.bincount(red.label.flatten(), minlength=num_classes))
            if keep.all():
                break
        label = self._labels(red)
        return red.probs(logits, query_to_class, 0, num_classes, keep, renormalize=self.renormalize), label[None]

    def _area_keep(self, counts: torch.Tensor) -> torch.Tensor:
        """SCLIP's area rule: (C,) bool, False for foreground classes whose argmax area is at most
        ``area_thd`` of all foreground pixels."""
        fg = torch.ones(counts.shape[0], dtype=torch.bool)
        fg[self.background_index] = False
        counts = counts.cpu().to(torch.float32)
        return (counts > self.area_thd * counts[fg].sum()) | ~fg

    def _labels(self, red: SoftmaxReducer) -> torch.Tensor:
        label = red.label.clone()
        if self.prob_thd > 0:
            label[red.top_prob() < self.prob_thd] = self.background_index
        return label

    def segment_image(self, image: torch.Tensor, out_hw: tuple[int, int], text: torch.Tensor,
                      query_to_class: torch.Tensor, *, return_probs: bool = False, probs_stride: int = 1,
                      return_raw: bool = False, progress: ProgressFn | None = None) -> dict[str, torch.Tensor]:
        """Segment one image in bounded memory, exactly.

        The image is cut into output tiles (grown by PAMR's reach when PAMR is on) and the vocabulary
        into chunks of whole classes, sized by ``memory_budget``; per tile the softmax over all queries,
        synonym max-pooling, argmax and probability threshold are accumulated chunk by chunk
        (:meth:`reducer`). The area rule needs the whole image's argmax areas: when it removes
        a class the tiles are computed once more. Only what is asked for is materialised at full size.

        Args:
            image: (3, h, w) normalised image (its valid part).
            out_hw: (H0, W0) output size (``ori_shape``).
            text: (Q, D) normalised query embeddings.
            query_to_class: (Q,) class of each query (non-decreasing).
            return_probs: also return class probabilities.
            probs_stride: probabilities at every ``probs_stride``-th pixel of each axis only.
            return_raw: also return the full (Q, H0, W0) ``logits`` (after PAMR) and ``logits_pre_pamr``.
            progress: gets ``('windows', done, total)`` and ``('tiles', done, total)``.

        Returns:
            dict with ``label`` (1, H0, W0) int64 and, if asked, ``probs`` (C, ceil(H0/s), ceil(W0/s)),
            ``logits``, ``logits_pre_pamr``.
        """
        H0, W0 = out_hw
        in_hw = tuple(image.shape[-2:])
        C = int(query_to_class.max()) + 1
        halo = self.pamr.halo if self.pamr is not None else 0
        plan = plan_chunks(query_to_class, out_hw, budget=self.memory_budget, halo=halo,
                           # per pixel: running statistics and labels, + PAMR's 16 affinities per pixel of the grown
                           # tile (32 while their softmax runs, and the guide image's statistics: at most 48) and its
                           # two buffers of at least 4 maps (8); per query and pixel: the logits and the stitching's
                           # temporaries (at most 7; PAMR refines them in place)
                           bytes_per_px=4 * (8 + (56 if self.pamr is not None else 0)), bytes_per_query_px=4 * 7,
                           tile=self.tile_size, max_queries=self.chunk_queries)
        windows = self.window_features(image, text, progress=progress)
        all_tiles = list(tiles(H0, W0, plan.tile))
        label = torch.zeros((1, H0, W0), dtype=torch.long, device=image.device)
        s = probs_stride
        probs = image.new_zeros((C, -(-H0 // s), -(-W0 // s))) if return_probs else None
        raw = {k: image.new_zeros((text.shape[0], H0, W0)) for k in ('logits', 'logits_pre_pamr')} if return_raw else {}
        single = len(plan.chunks) == 1 and plan.tile == (H0, W0)  # one piece: keep it instead of recomputing

        def tile_logits(tile, ext, guide_aff, chunk):
            """(q, th, tw) final logits of a chunk on a tile, computed on its grown region ``ext``."""
            q0, q1 = chunk[:2]
            lg = self._region_logits(windows, text[q0:q1], in_hw, out_hw, ext)
            inner = (slice(None), slice(tile[0] - ext[0], tile[2] - ext[0]), slice(tile[1] - ext[1], tile[3] - ext[1]))
            if return_raw:
                raw['logits_pre_pamr'][q0:q1, tile[0]:tile[2], tile[1]:tile[3]] = lg[inner]
            if self.pamr is not None:
                lg = self.pamr.refine(lg[None], guide_aff, inplace=True)[0]  # lg is this call's own
            lg = lg[inner]
            if return_raw:
                raw['logits'][q0:q1, tile[0]:tile[2], tile[1]:tile[3]] = lg
            return lg

        need_stats = return_probs or self.prob_thd > 0  # the argmax alone needs no softmax
        match = self.match()  # read once, not per tile
        keep, cached = None, {}
        # the area rule's second round changes which classes compete, not the softmax over all queries: its
        # statistics (2 floats per pixel) are kept from the first round instead of recomputed (an exponential
        # per query and pixel), unless renormalised probabilities (a sum over the kept classes) are asked for
        stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        keep_stats = self.area_thd is not None and need_stats and not (return_probs and self.renormalize)
        for _ in range(2):  # the second round only when the area rule removes a class
            counts = torch.zeros(C, dtype=torch.long)
            for t, tile in enumerate(all_tiles):
                ext = expand(tile, plan.halo, H0, W0)
                aff = None
                if self.pamr is not None:
                    # the affinities, computed once per tile for every chunk of queries
                    aff = self.pamr.affinity(resize_region(image, in_hw, out_hw, ext)[None])
                reuse = keep is not None and t in stats
                red = self.reducer((tile[2] - tile[0], tile[3] - tile[1]), probs=need_stats and not reuse,
                                   renormalize=return_probs and self.renormalize, device=image.device, match=match)
                pix = (slice(-tile[0] % s, None, s), slice(-tile[1] % s, None, s))  # the tile's strided pixels
                pieces = []
                for chunk in plan.chunks:
                    lg = cached[chunk] if chunk in cached else tile_logits(tile, ext, aff, chunk)
                    if single:
                        cached[chunk] = lg
                    q0, q1, c0, c1 = chunk
                    red.update(lg, query_to_class[q0:q1], c0, c1, None if keep is None else keep[c0:c1])
                    if return_probs:  # at most the probabilities' own size
                        pieces.append(lg[(slice(None), *pix)])
                if reuse:
                    red.m, red.s = stats.pop(t)
                elif keep_stats:
                    stats[t] = (red.m, red.s)
                label[0, tile[0]:tile[2], tile[1]:tile[3]] = self._labels(red)
                counts += torch.bincount(red.label.flatten().cpu(), minlength=C)
                py, px = -(-tile[0] // s), -(-tile[1] // s)
                for (q0, q1, c0, c1), lg in zip(plan.chunks, pieces):
                    p = red.probs(lg, query_to_class[q0:q1], c0, c1, None if keep is None else keep[c0:c1],
                                  renormalize=self.renormalize, pixels=pix)
                    probs[c0:c1, py:py + p.shape[1], px:px + p.shape[2]] = p
                if progress is not None:
                    progress('tiles', t + 1, len(all_tiles))
            if self.area_thd is None or keep is not None:
                break
            keep = self._area_keep(counts)
            if keep.all():
                break
        out = dict(label=label, **raw)
        if probs is not None:
            out['probs'] = probs
        return out

    @torch.no_grad()
    def inference(self, inputs: torch.Tensor, batch_img_metas: Sequence[dict], *,
                  vocabulary: Any = None, return_probs: bool | None = None,
                  return_raw: bool = False, progress: ProgressFn | None = None) -> list[dict[str, torch.Tensor]]:
        """Segment a batch.

        Args:
            inputs: (B, 3, H, W) normalised images (padded; each meta's ``img_shape`` is its valid part).
            batch_img_metas: per image ``img_shape`` and ``ori_shape``.
            vocabulary: classes for this call (default: the model's).
            return_probs: also return class probabilities ``probs`` (default: the model's ``return_probs``).
            return_raw: also return ``logits`` (Q, H0, W0) before post-processing (after PAMR) and
                ``logits_pre_pamr`` (materialised at full size: for checks on small images).
            progress: gets ``(stage, done, total)`` for ``'text'`` (when encoded), ``'windows'`` and
                ``'tiles'`` (per image).

        Returns:
            per image a dict with ``label`` (1, H0, W0) and, if asked, ``probs`` (C, H0, W0) (every
            ``probs_stride``-th pixel).
        """
        emb = self.class_embeddings(vocabulary, progress=progress)
        text, q2c = emb.queries, emb.query_to_class.cpu()
        want_probs = self.return_probs if return_probs is None else return_probs
        results = []
        for img, meta in zip(inputs, batch_img_metas):
            h, w = meta.get('img_shape', img.shape[-2:])[:2]
            ori = tuple(meta.get('ori_shape', (h, w))[:2])
            results.append(self.segment_image(img[:, :h, :w], ori, text, q2c, return_probs=want_probs,
                                              probs_stride=self.probs_stride, return_raw=return_raw,
                                              progress=progress))
        return results

    def init_weights(self) -> None:
        """Load the backbone's CLIP weights (nothing else here has weights)."""
        self.backbone.init_weights()

    # ------------------------------------------------------- mmseg interface
    def predict(self, inputs: torch.Tensor, data_samples: list | None = None, *,
                progress: ProgressFn | None = None) -> list:
        from mmseg.structures import SegDataSample
        if data_samples is None:
            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[2:], ori_shape=inputs.shape[2:]))
                            for _ in range(inputs.shape[0])]
        results = self.inference(inputs, [s.metainfo for s in data_samples], progress=progress,
                                 vocabulary=self.sample_vocabulary(data_samples))
        for sample, res in zip(data_samples, results):
            sample.set_data(dict(pred_sem_seg=PixelData(data=res['label'])))
            if 'probs' in res:
                sample.set_data(dict(seg_logits=PixelData(data=res['probs'])))
        return data_samples

    def extract_feat(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.backbone(inputs)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """(B, Q, H, W) cosine logits at input resolution."""
        text = self.class_embeddings().queries
        return torch.stack([self.encode_image(img, text) for img in inputs])

    def _forward(self, inputs: torch.Tensor, data_samples: list | None = None) -> torch.Tensor:
        return self.encode_decode(inputs, [])

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        raise NotImplementedError('OVSegmentor is training-free; train OVTextSegmentor or OVDenseCLIP instead')
