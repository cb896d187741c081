"""Open-vocabulary box head: mmdet's ConvFCBBoxHead classifying by the class embeddings it is given."""
from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmengine.structures import InstanceData

from ...registry import register
from ..text import ClassEmbeddings
from ..utils.renamed import refuse_moved


NOVEL_LOGITS = ('negative', 'masked')
# (head id, class count) of the call running in this thread / task: a context variable, so concurrent calls with
# other vocabularies do not see each other's (and the head itself holds nothing per call)
_CALL_CLASSES: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar('ov_call_classes', default=None)


@register('MODELS', mmseg=False)
class OVTextBBoxHead(ConvFCBBoxHead):
    """Open-vocabulary box head: region features projected into the text space, classified by cosine
    similarity with the class embeddings it is given (:class:`~ovdense.models.text.ClassEmbeddings`, with
    the text encoder's learnt background as the last row) times a temperature; class-agnostic box regression.
    mmdet's ``ConvFCBBoxHead`` computes the shared, classification and regression branches.

    With VLM features of the boxes (the CLIP dense map pooled by RoIAlign, see :class:`OVFViT`) the
    test-time scores are fused by F-ViT's rule: ``p^(1-alpha) * v^alpha`` for base classes and background,
    ``p^(1-beta) * v^beta`` for the others, ``p`` the detector's softmax, ``v`` the softmax of the VLM
    logits ``vlm_temperature * cos`` over the same K + 1 embeddings; the fused scores are used as they
    are (not renormalised), as the reference. At test time ``forward`` returns log-scores (log-softmax,
    or the log of the fused scores) and :meth:`predict_by_feat` exponentiates them.

    Args:
        embed_dim: text-embedding dimension.
        base_classes: the classes trained on (for the fusion weights; others are novel); None: all.
        temperature: initial (or fixed) logit scale.
        learn_temperature: learn the logit scale.
        vlm_temperature: logit scale of the VLM scores (reference 75 for CLIPs trained to 100); None:
            the logit scale of the CLIP that embedded the vocabulary.
        alpha: VLM weight for base classes; beta: for novel classes.
        novel_logits: the novel classes' logits in the training softmax: ``'negative'`` (kept: novel names
            are negatives of every region) or ``'masked'`` (-inf, as the reference's ``CustomCrossEntropyLoss``
            with class weight 0: the classifier is never taught away from unseen names). Needs
            ``base_classes`` (or :class:`~ovdense.hooks.OVBaseClassesFromDatasetHook`) for ``'masked'``.
        background_weight: loss weight of background regions (reference: 0.6 on OV-COCO, 0.9 on OV-LVIS).
    """

    def __init__(self, *, embed_dim: int, base_classes: Sequence[str] | None = None, temperature: float = 50.0,
                 learn_temperature: bool = True, vlm_temperature: float | None = 75.0, alpha: float = 0.1,
                 beta: float = 0.8, novel_logits: str = 'negative', background_weight: float = 1.0,
                 **kwargs) -> None:
        refuse_moved('OVTextBBoxHead', {k: kwargs.pop(k) for k in ('clip', 'vocabulary') if k in kwargs}, dict(
            clip="the head has no CLIP: the detector's text encoder (OVFViT(text_encoder=dict(...))) embeds the "
                 "classes with the backbone's CLIP and passes the embeddings to the head",
            vocabulary='the classes are the detector\'s: OVFViT(text_encoder=dict(vocabulary=...)), or per call'))
        kwargs.setdefault('reg_class_agnostic', True)
        kwargs.setdefault('num_shared_fcs', 2)
        super().__init__(**kwargs)  # num_classes: the call's class embeddings decide (:meth:`classes`)
        self.embed_dim = embed_dim
        self.base_classes = tuple(base_classes) if base_classes is not None else None
        self.fc_cls = nn.Linear(self.cls_last_dim, embed_dim)  # projection into the text space
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer('log_temperature', log_t)
        if vlm_temperature is not None and vlm_temperature <= 0:
            raise ValueError(f'vlm_temperature must be > 0 (or None: the CLIP logit scale), got {vlm_temperature}')
        self.vlm_temperature = vlm_temperature
        self.alpha, self.beta = alpha, beta
        if novel_logits not in NOVEL_LOGITS:
            raise ValueError(f"unknown novel_logits '{novel_logits}'; valid: {list(NOVEL_LOGITS)}")
        if background_weight < 0:
            raise ValueError(f'background_weight must be >= 0, got {background_weight}')
        self.novel_logits = novel_logits
        self.background_weight = float(background_weight)

    @property
    def num_classes(self) -> int:
        """The classes of the call running in this thread (mmdet's targets and NMS read it; the background label is
        this number), else the configured number."""
        current = _CALL_CLASSES.get()
        return current[1] if current is not None and current[0] == id(self) else self._configured_classes

    @num_classes.setter
    def num_classes(self, value: int) -> None:  # mmdet's BBoxHead.__init__ sets the configured number
        self._configured_classes = int(value)

    @contextmanager
    def classes(self, k: int) -> Iterator[None]:
        """``num_classes`` is ``k`` inside the block, in this thread only (other threads' calls keep theirs)."""
        token = _CALL_CLASSES.set((id(self), int(k)))
        try:
            yield
        finally:
            _CALL_CLASSES.reset(token)

    def scores(self, emb: torch.Tensor, text: ClassEmbeddings, scale: torch.Tensor | float) -> torch.Tensor:
        """(N, D) region embeddings -> (N, K + 1) logits ``scale * cos``: the classes (synonyms reduced by
        their rule), then the background (the best of its embeddings)."""
        if text.background is None:
            raise ValueError('OVTextBBoxHead needs a background embedding: text_encoder=dict(background=...)')
        if text.queries.shape[1] != self.embed_dim:
            raise ValueError(f'text embeddings have {text.queries.shape[1]} dims, the head embed_dim={self.embed_dim}')
        emb = F.normalize(emb, dim=-1)
        cls = text.reduce(emb @ text.queries.to(emb).t(), dim=-1)
        bg = (emb @ text.background.to(emb).t()).amax(-1, keepdim=True)
        return torch.cat([cls, bg], -1) * scale

    def forward(self, x: torch.Tensor, text: ClassEmbeddings,
                vlm_feats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """RoI features (N, C, 7, 7), class embeddings [+ VLM box features (N, D)] -> class logits
        (N, K + 1), box deltas (N, 4)."""
        current = _CALL_CLASSES.get()
        if current is not None and current[0] == id(self) and current[1] != text.num_classes:
            raise RuntimeError(f'the call counts {current[1]} classes, {text.num_classes} embeddings given')
        region, bbox_pred = super().forward(x)  # fc_cls is the projection: (N, embed_dim)
        cls_score = self.scores(region, text, self.log_temperature.exp())
        if self.training:
            if self.novel_logits == 'masked':
                if self.base_classes is None:
                    raise ValueError("novel_logits='masked' needs base_classes (or OVBaseClassesFromDatasetHook)")
                cls_score = cls_score.masked_fill(~self.base_mask(text, cls_score.device), float('-inf'))
            return cls_score, bbox_pred
        if vlm_feats is not None:
            return self.fuse(cls_score, vlm_feats, text), bbox_pred
        return cls_score.log_softmax(-1), bbox_pred

    def vlm_scale(self, text: ClassEmbeddings) -> float:
        """The VLM logit scale in use: ``vlm_temperature``, or that of the CLIP that embedded ``text``."""
        return self.vlm_temperature if self.vlm_temperature is not None else text.logit_scale

    def fuse(self, cls_score: torch.Tensor, vlm_feats: torch.Tensor, text: ClassEmbeddings) -> torch.Tensor:
        """F-ViT's geometric fusion in log space: (N, K + 1) logits, (N, D) VLM box features, the class
        embeddings -> (N, K + 1) log fused scores (unnormalised, as the reference)."""
        vlm = self.scores(vlm_feats, text, self.vlm_scale(text))
        base = self.base_mask(text, cls_score.device)
        w = torch.where(base, torch.tensor(self.alpha, device=base.device), torch.tensor(self.beta, device=base.device))
        return (1 - w) * cls_score.log_softmax(-1) + w * vlm.log_softmax(-1)

    def base_mask(self, text: ClassEmbeddings, device: torch.device | str = 'cpu') -> torch.Tensor:
        """(K + 1,) bool: the base classes of the vocabulary (all without ``base_classes``), and the background."""
        names = text.vocabulary.names
        base_set = set(self.base_classes if self.base_classes is not None else names)
        return torch.tensor([n in base_set for n in names] + [True], device=device)

    def loss(self, cls_score: torch.Tensor, bbox_pred: torch.Tensor, rois: torch.Tensor, labels: torch.Tensor,
             label_weights: torch.Tensor, *args: Any, **kwargs: Any) -> dict:
        """mmdet's loss, background regions weighted by ``background_weight`` (the average is still over all
        sampled regions, as the reference's class weight)."""
        if self.background_weight != 1.0:
            label_weights = torch.where(labels == self.num_classes, label_weights * self.background_weight,
                                        label_weights)
        return super().loss(cls_score, bbox_pred, rois, labels, label_weights, *args, **kwargs)

    def _predict_by_feat_single(self, roi: torch.Tensor, cls_score: torch.Tensor, bbox_pred: torch.Tensor,
                                img_meta: dict, rescale: bool = False, rcnn_test_cfg: Any = None) -> Any:
        """mmdet's box decoding and NMS on the scores ``exp(cls_score)`` (test-time log-scores, see
        :meth:`forward`): mmdet's softmax would renormalise the fused scores."""
        if roi.shape[0] == 0:
            return super()._predict_by_feat_single(roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)
        raw = super()._predict_by_feat_single(roi, cls_score, bbox_pred, img_meta, rescale, None)
        scores = cls_score.exp()
        if rcnn_test_cfg is None:
            raw.scores = scores
            return raw
        det, labels = multiclass_nms(raw.bboxes, scores, rcnn_test_cfg.score_thr, rcnn_test_cfg.nms,
                                     rcnn_test_cfg.max_per_img, box_dim=4)
        return InstanceData(bboxes=det[:, :-1], scores=det[:, -1], labels=labels)
