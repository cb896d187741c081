"""F-ViT open-vocabulary detection on mmdet 3.x: a frozen CLIP ViT as a feature pyramid, a box head
whose classifier is the text embedding of the vocabulary, and VLM score fusion with the CLIP dense map.

The backbone and the box head are plain mmdet modules: a stock Faster / Mask R-CNN config becomes
open-vocabulary by swapping them in. :class:`OVFViT` adds the VLM score fusion, which needs the
backbone's dense CLIP map at the RoI head.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.structures import InstanceData

from ..clip import CLIPModel
from ..registry import register
from .backbones.clip_vit import OVCLIPViT
from .text import ClassEmbeddings, TextSideMixin, build_text_encoder


@register('MODELS', mmseg=False)
class OVFViTBackbone(BaseModule):
    """Frozen CLIP ViT -> 4-level feature pyramid (strides p/4, p/2, p, 2p) for an FPN neck.

    Blocks ``out_indices`` (reference: 3/5/7/11 for B/16, 6/10/14/23 for L/14) are taken at the patch
    grid and resized by 2 transposed convs (x4), 1 transposed conv (x2), identity and max-pooling (/2),
    as F-ViT. The last block runs in the dense ``mode`` (MaskCLIP v-path in the reference). The CLIP
    stays frozen and in eval mode (:class:`OVCLIPViT` with ``frozen=True``).

    Args:
        clip: a :class:`~ovdense.clip.CLIPModel` or ``build_clip`` kwargs.
        out_indices: 4 block indices.
        mode: dense mode of the last block (see :data:`ovdense.models.DENSE_MODES`).
        norm_cfg: norm after the first transposed conv of the x4 branch (None: none).
        with_dense: also return the L2-normalised dense CLIP map (B, D, h, w) as a 5th output (for
            :class:`OVFViT`'s VLM score fusion).
        pos_interp: position-embedding interpolation of :class:`OVCLIPViT`.
        out_channels: 4 output widths (1x1 convs after the resizing), e.g. ``(256, 512, 1024, 2048)`` to
            drop into a ResNet config's FPN unchanged; None keeps the ViT width on every level.
    """

    def __init__(self, clip: Any, out_indices: Sequence[int] = (3, 5, 7, 11), *, mode: str = 'maskclip',
                 norm_cfg: dict | None = None, with_dense: bool = False, pos_interp: str = 'bicubic',
                 out_channels: Sequence[int] | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_indices) != 4:
            raise ValueError(f'out_indices must name 4 blocks, got {list(out_indices)}')
        self.vit = OVCLIPViT(clip, mode, out_indices=out_indices, frozen=True, pos_interp=pos_interp)
        if sorted(self.vit.out_indices) != list(self.vit.out_indices) or len(set(self.vit.out_indices)) != 4:
            raise ValueError(f'out_indices must be 4 increasing block indices, got {list(out_indices)}')
        w = self.vit.tower.width
        self.width = w
        self.with_dense = with_dense
        self.up4 = nn.Sequential(nn.ConvTranspose2d(w, w, 2, 2),
                                 build_norm_layer(norm_cfg, w)[1] if norm_cfg else nn.Identity(),
                                 nn.GELU(), nn.ConvTranspose2d(w, w, 2, 2))
        self.up2 = nn.ConvTranspose2d(w, w, 2, 2)
        self.down2 = nn.MaxPool2d(2, 2)
        if out_channels is not None and len(out_channels) != 4:
            raise ValueError(f'out_channels must give 4 widths, got {list(out_channels)}')
        self.lateral = nn.ModuleList([nn.Conv2d(w, c, 1) for c in out_channels]) if out_channels else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> 4 maps (B, width, 4h, 4w), (2h, 2w), (h, w), (h/2, w/2) [+ dense (B, D, h, w)]."""
        with torch.no_grad():
            out = self.vit.forward_tokens(x)
        i0, i1, i2, i3 = out['intermediates']
        levels = [self.up4(i0), self.up2(i1), i2, self.down2(i3)]
        if self.lateral is not None:
            levels = [conv(f) for conv, f in zip(self.lateral, levels)]
        if self.with_dense:
            h, w = out['grid']
            dense = out['tokens'][:, 1:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
            levels.append(F.normalize(dense, dim=1))
        # contiguous: mmcv's RoIAlign silently misreads strided maps (open-mmlab/mmcv#2203); a conv of the
        # transposed tokens is channels-last
        return tuple(f.contiguous() for f in levels)


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
    """

    def __init__(self, *, embed_dim: int, base_classes: Sequence[str] | None = None, temperature: float = 50.0,
                 learn_temperature: bool = True, vlm_temperature: float | None = 75.0, alpha: float = 0.1,
                 beta: float = 0.8, **kwargs) -> None:
        kwargs.setdefault('reg_class_agnostic', True)
        kwargs.setdefault('num_shared_fcs', 2)
        super().__init__(**kwargs)  # num_classes: set from the class embeddings at every call
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
        if self.num_classes != text.num_classes:
            raise RuntimeError(f'head sized for {self.num_classes} classes, {text.num_classes} embeddings given')
        region, bbox_pred = super().forward(x)  # fc_cls is the projection: (N, embed_dim)
        cls_score = self.scores(region, text, self.log_temperature.exp())
        if self.training:
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
        names = text.vocabulary.names
        base_set = set(self.base_classes if self.base_classes is not None else names)
        base = torch.tensor([n in base_set for n in names] + [True], device=cls_score.device)
        w = torch.where(base, torch.tensor(self.alpha, device=base.device), torch.tensor(self.beta, device=base.device))
        return (1 - w) * cls_score.log_softmax(-1) + w * vlm.log_softmax(-1)

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


@register('MODELS', mmseg=False)
class OVFViT(TextSideMixin, TwoStageDetector):
    """F-ViT: two-stage detector over :class:`OVFViTBackbone` whose classes come from its text encoder
    (:class:`~ovdense.models.text.OVTextEncoder`, embedded with the backbone's CLIP, with a learnt
    background), passed to the :class:`OVFViTRoIHead` as arguments. With ``with_dense=True`` the dense CLIP
    map goes to the RoI head for VLM score fusion, the pyramid to the neck.

    Args:
        text_encoder: :class:`~ovdense.models.text.OVTextEncoder` config (``background='learnt'`` and
            ``embed_dim`` default to the CLIP's).
        **kwargs: mmdet ``TwoStageDetector`` arguments.
    """

    def __init__(self, *, text_encoder: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text_encoder = build_text_encoder(text_encoder, background='learnt', embed_dim=self.text_clip.embed_dim)

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.vit.clip

    def _features(self, inputs: torch.Tensor) -> tuple[tuple, torch.Tensor | None]:
        feats = self.backbone(inputs)
        dense = None
        if getattr(self.backbone, 'with_dense', False):
            feats, dense = feats[:-1], feats[-1]
        return (self.neck(feats) if self.with_neck else feats), dense

    def extract_feat(self, batch_inputs: torch.Tensor) -> tuple:
        return self._features(batch_inputs)[0]

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: list) -> dict:
        with self.roi_head.inputs(self.class_embeddings()):
            return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        x, dense = self._features(batch_inputs)
        if batch_data_samples[0].get('proposals', None) is None:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
        else:
            rpn_results_list = [s.proposals for s in batch_data_samples]
        with self.roi_head.inputs(self.class_embeddings(), dense):
            results = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)
