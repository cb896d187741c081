"""Export a training-free segmentor with a fixed vocabulary and input size to ONNX.

The exported graph takes normalised images (B, 3, H, W) and returns class probabilities (B, C, H, W) and labels
(B, H, W) at the input's resolution: the text embeddings are constants of the graph, the sliding windows of the
fixed size are one batch through the dense method, and the window logits are merged, turned into probabilities
(softmax or sigmoid over the queries, synonyms max-pooled, NACLIP's renormalisation) and thresholded
(``prob_thd``) in the graph. What stays outside: resizing to the original image (export at the size you feed),
PAMR (it refines the logits at the original size, after that resize; the export refuses a model that uses it) and
SCLIP's area rule (a data-dependent second pass; refused likewise), the tiling and class chunking of :meth:`OVSegmentor.segment_image`
(the graph holds the whole (Q, H, W) logits). Vanilla, MaskCLIP, SCLIP, ClearCLIP, NACLIP and ProxyCLIP export
(equal to ovdense's inference within 1e-5 on the tiny CLIP); SC-CLIP (LOF's quantile) and ResCLIP (its feedback
prior's label-dependent shapes) do not, and say so.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models.segmentors.ov_segmentor import OVSegmentor
from .models.utils import slide_windows

__all__ = ['OVSegExport', 'export_onnx', 'onnx_runtime_check']


class OVSegExport(nn.Module):
    """A training-free segmentor with its vocabulary folded in, for one input size.

    Args:
        model: the segmentor (its CLIP weights loaded).
        vocabulary: the classes (any form :meth:`OVSegmentor.class_embeddings` takes; None: the model's).
        size: (H, W) of the normalised input images.

    Raises:
        ValueError: the model uses what the graph cannot hold (PAMR, the area rule), or is not an OVSegmentor.
    """

    def __init__(self, model: OVSegmentor, vocabulary: Any = None, *, size: tuple[int, int]) -> None:
        super().__init__()
        if not isinstance(model, OVSegmentor):
            raise ValueError(f'export takes a training-free OVSegmentor, got {type(model).__name__}')
        if model.pamr is not None or model.area_thd is not None:
            raise ValueError('the exported graph has no PAMR and no area rule (PAMR runs at the original size, the '
                             'area rule is a data-dependent pass): '
                             "export with --cfg-options model.pamr=None model.area_thd=None and compare")
        self.model = model
        model.ready()  # the CLIP weights its config names, before the trace
        emb = model.class_embeddings(vocabulary)
        self.register_buffer('text', emb.queries.detach().clone(), persistent=False)
        q2c = emb.query_to_class.detach().cpu().long()
        self.num_classes = int(q2c.max()) + 1
        # (C, S) the queries of each class, padded by repeating its first (the max over synonyms is unchanged)
        members = [torch.nonzero(q2c == c).flatten() for c in range(self.num_classes)]
        width = max(len(q) for q in members)
        self.register_buffer('synonyms', torch.stack([torch.cat([q, q[:1].expand(width - len(q))]) for q in members]),
                             persistent=False)
        self.size = tuple(size)
        self.scale, self.bias = model.match()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised images -> probabilities (B, C, H, W), labels (B, H, W) int64."""
        m, text = self.model, self.text
        H, W = self.size
        boxes = slide_windows(H, W, m.slide_crop, m.slide_stride) if m.slide_crop > 0 else [(0, 0, H, W)]
        y1, x1, y2, x2 = boxes[0]
        left, right, top, bottom = m._window_pad(y2 - y1, x2 - x1)
        crops = torch.cat([images[:, :, a:c, b:d] for a, b, c, d in boxes])  # (n * B, 3, h, w): one batch
        feats = m._dense(F.pad(crops, (left, right, top, bottom)), text)
        patch = torch.einsum('ndhw,qd->nqhw', feats, text.to(feats.dtype))
        size = (y2 - y1 + top + bottom, x2 - x1 + left + right)
        lg = F.interpolate(patch, size=size, mode='bilinear', align_corners=False)[..., top:top + y2 - y1,
                                                                                   left:left + x2 - x1]
        B = images.shape[0]
        out = images.new_zeros((B, text.shape[0], H, W))
        count = images.new_zeros((1, 1, H, W))
        for k, (a, b, c, d) in enumerate(boxes):
            out = out + F.pad(lg[k * B:(k + 1) * B], (b, W - d, a, H - c))
            count = count + F.pad(torch.ones_like(count[..., a:c, b:d]), (b, W - d, a, H - c))
        logits = out / count
        if m.activation == 'sigmoid':
            probs = torch.sigmoid(logits * self.scale + self.bias)
        else:
            probs = torch.softmax(logits * self.scale, 1)
        C, S = self.synonyms.shape
        probs = probs.index_select(1, self.synonyms.flatten()).view(B, C, S, H, W).amax(2)  # synonyms max-pooled
        top, label = probs.amax(1), probs.argmax(1)
        if m.prob_thd > 0:
            label = torch.where(top < m.prob_thd, torch.full_like(label, m.background_index), label)
        if m.renormalize:
            probs = probs / probs.sum(1, keepdim=True)
        return probs, label


def export_onnx(model: OVSegmentor, path: str | os.PathLike, *, size: tuple[int, int], vocabulary: Any = None,
                batch: int = 1, opset: int = 18) -> OVSegExport:
    """Write ``path`` (ONNX, input ``images`` (batch, 3, H, W) normalised with the CLIP's statistics, outputs
    ``probs`` (batch, C, H, W) and ``labels`` (batch, H, W)) and return the exported module (its forward is what the
    graph computes). The file's metadata holds the class names (JSON), the input size and the normalisation
    (``mean`` / ``std`` of 0-255 RGB)."""
    import json

    import onnx

    wrapper = OVSegExport(model, vocabulary, size=size).eval()
    dummy = torch.zeros(batch, 3, *size)
    with torch.no_grad(), warnings.catch_warnings():
        # the trace turns sizes into constants: that is the design (one graph per input size), not a hazard
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='Constant folding - Only steps=1')
        try:
            torch.onnx.export(wrapper, (dummy,), str(path), input_names=['images'], output_names=['probs', 'labels'],
                              opset_version=opset, dynamo=False)
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:  # an operator or shape logic the trace lacks
            Path(path).unlink(missing_ok=True)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ValueError(f'the dense method {type(model.backbone.method).__name__} does not export to ONNX '
                             f'({first})') from None
    graph = onnx.load(str(path))
    mean, std = model.text_clip.image_stats
    onnx.helper.set_model_props(graph, dict(
        classes=json.dumps(list(model.class_embeddings(vocabulary).vocabulary.names)), input_size=json.dumps(list(size)),
        mean=json.dumps([round(255 * v, 4) for v in mean]), std=json.dumps([round(255 * v, 4) for v in std]),
        color_order='RGB', producer='ovdense'))
    onnx.save(graph, str(path))
    return wrapper


def onnx_runtime_check(model: OVSegmentor, path: str | os.PathLike, *, size: tuple[int, int], vocabulary: Any = None,
                       batch: int = 1, seed: int = 0) -> tuple[float, int]:
    """Run the exported graph with ONNX Runtime on random images and compare with ovdense's own inference
    (:meth:`OVSegmentor.inference`): (max |probability difference|, labels differing where the top-2 margin of
    PyTorch's probabilities exceeds 1e-5)."""
    import onnxruntime as ort

    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    probs, labels = (torch.from_numpy(a) for a in session.run(None, {'images': x.numpy()}))
    with torch.no_grad():
        res = model.inference(x.to(next(model.parameters()).device), [dict(img_shape=size, ori_shape=size)] * batch,
                              vocabulary=vocabulary, return_probs=True)
    want = torch.stack([r['probs'].cpu() for r in res])
    top2 = want.topk(2, 1).values if want.shape[1] > 1 else torch.cat([want, torch.zeros_like(want)], 1)
    sure = (top2[:, 0] - top2[:, 1]) > 1e-5
    mismatches = int(((labels != torch.stack([r['label'][0].cpu() for r in res])) & sure).sum())
    return float((probs - want).abs().max()), mismatches
