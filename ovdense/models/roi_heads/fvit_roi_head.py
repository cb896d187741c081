"""mmdet's StandardRoIHead that hands the class embeddings (and the dense CLIP map) to its box head."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS

from ...registry import register
from ..text import ClassEmbeddings


@register('MODELS', mmseg=False)
class OVFViTRoIHead(StandardRoIHead):
    """StandardRoIHead whose box head is an :class:`OVTextBBoxHead`: inside ``with roi_head.inputs(text):`` its
    ``loss`` and ``predict`` pass the class embeddings to the box head, and the box (and mask) heads are sized
    by them. At test time it also pools the CLIP dense map over each box (``vlm_roi_extractor``, RoIAlign to 1x1 at the patch
    stride) for the box head's VLM score fusion."""

    def __init__(self, *, vlm_roi_extractor: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vlm_roi_extractor = MODELS.build(vlm_roi_extractor) if vlm_roi_extractor is not None else None
        self._text: ClassEmbeddings | None = None
        self._vlm_feat: torch.Tensor | None = None

    @contextmanager
    def inputs(self, text: ClassEmbeddings, vlm_feat: torch.Tensor | None = None) -> Iterator[None]:
        """Class embeddings (and the dense CLIP map (B, D, h, w) for fusion) for the calls inside the block:
        mmdet's RoI-head API has no place for them, so they are held for its duration."""
        self.bbox_head.num_classes = text.num_classes  # mmdet's targets and NMS use it (background = K)
        if getattr(self, 'mask_head', None) is not None:
            self.mask_head.num_classes = text.num_classes
        self._text, self._vlm_feat = text, (vlm_feat if self.vlm_roi_extractor is not None else None)
        try:
            yield
        finally:
            self._text = self._vlm_feat = None

    def _bbox_forward(self, x: tuple, rois: torch.Tensor) -> dict:
        if self._text is None:
            raise RuntimeError('OVFViTRoIHead needs the class embeddings: call loss/predict with text=')
        x = tuple(f.contiguous() for f in x[:self.bbox_roi_extractor.num_inputs])  # see OVFViTBackbone.forward
        bbox_feats = self.bbox_roi_extractor(x, rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        vlm = None
        if self._vlm_feat is not None and not self.training:
            # mmcv's RoIAlign silently misreads non-contiguous maps (open-mmlab/mmcv#2203)
            vlm = self.vlm_roi_extractor([self._vlm_feat.contiguous()], rois).flatten(1)
        cls_score, bbox_pred = self.bbox_head(bbox_feats, self._text, vlm)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)
