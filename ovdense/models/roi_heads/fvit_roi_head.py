"""mmdet's StandardRoIHead that hands the class embeddings (and the dense CLIP map) to its box head."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS

from ...registry import register
from ..text import ClassEmbeddings


# (RoI head id, class embeddings, dense map) of the call running in this thread / task
_CALL_INPUTS: contextvars.ContextVar[tuple | None] = contextvars.ContextVar('ov_roi_inputs', default=None)


@register('MODELS', mmseg=False)
class OVFViTRoIHead(StandardRoIHead):
    """StandardRoIHead whose box head is an :class:`OVTextBBoxHead`: inside ``with roi_head.inputs(text):`` its
    ``loss`` and ``predict`` pass the class embeddings to the box head, and the box (and mask) heads are sized
    by them. At test time it also pools the CLIP dense map over each box (``vlm_roi_extractor``, RoIAlign to 1x1 at the patch
    stride) for the box head's VLM score fusion."""

    def __init__(self, *, vlm_roi_extractor: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vlm_roi_extractor = MODELS.build(vlm_roi_extractor) if vlm_roi_extractor is not None else None
        if getattr(self, 'mask_head', None) is not None and not getattr(self.mask_head, 'class_agnostic', True):
            raise ValueError('an open-vocabulary detector needs a class-agnostic mask head (class_agnostic=True): '
                             'per-class mask channels are fixed when the head is built')

    @contextmanager
    def inputs(self, text: ClassEmbeddings, vlm_feat: torch.Tensor | None = None) -> Iterator[None]:
        """Class embeddings (and the dense CLIP map (B, D, h, w) for fusion) for the calls inside the block, and the
        box head's class count: mmdet's RoI-head API has no place for them, so they are the call's context (a context
        variable: concurrent calls in other threads keep theirs; nothing of the head is rewritten)."""
        token = _CALL_INPUTS.set((id(self), text, vlm_feat if self.vlm_roi_extractor is not None else None))
        try:
            with self.bbox_head.classes(text.num_classes):  # mmdet's targets and NMS read it (background = K)
                yield
        finally:
            _CALL_INPUTS.reset(token)

    def _bbox_forward(self, x: tuple, rois: torch.Tensor) -> dict:
        call = _CALL_INPUTS.get()
        if call is None or call[0] != id(self):
            raise RuntimeError('OVFViTRoIHead needs the class embeddings: call it inside roi_head.inputs(text)')
        _, text, vlm_feat = call
        x = tuple(f.contiguous() for f in x[:self.bbox_roi_extractor.num_inputs])  # see OVFViTBackbone.forward
        bbox_feats = self.bbox_roi_extractor(x, rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        vlm = None
        if vlm_feat is not None and not self.training:
            # mmcv's RoIAlign silently misreads non-contiguous maps (open-mmlab/mmcv#2203)
            vlm = self.vlm_roi_extractor([vlm_feat.contiguous()], rois).flatten(1)
        cls_score, bbox_pred = self.bbox_head(bbox_feats, text, vlm)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)
