"""F-ViT open-vocabulary detection on mmdet 3.x: a frozen CLIP ViT as a feature pyramid, a box head
whose classifier is the text embedding of the vocabulary, and VLM score fusion with the CLIP dense map.

The backbone and the box head are plain mmdet modules: a stock Faster / Mask R-CNN config becomes
open-vocabulary by swapping them in. :class:`OVFViT` adds the VLM score fusion, which needs the
backbone's dense CLIP map at the RoI head.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

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

from ..registry import register
from ..vocabulary import TextEmbeddingCache, Vocabulary
from .backbones.clip_vit import OVCLIPViT


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
    similarity with the vocabulary's text embeddings (and a learnt background embedding) times a
    temperature; class-agnostic box regression.

    With VLM features of the boxes (the CLIP dense map pooled by RoIAlign, see :class:`OVFViT`) the
    test-time scores are fused by F-ViT's rule: ``p^(1-alpha) * v^alpha`` for base classes and background,
    ``p^(1-beta) * v^beta`` for the others, ``p`` the detector's softmax, ``v`` the softmax of the VLM
    logits ``vlm_temperature * cos`` over the same K + 1 embeddings; the fused scores are used as they
    are (not renormalised), as the reference. At test time ``forward`` returns log-scores (log-softmax,
    or the log of the fused scores) and :meth:`predict_by_feat` exponentiates them.

    Args:
        vocabulary: the classes, in the order of the dataset's labels.
        embed_dim: text-embedding dimension.
        clip: ``build_clip`` kwargs of the CLIP whose text tower embeds the vocabulary (None: the
            detector provides a CLIP, see :class:`OVFViT`).
        templates: prompt templates (name of :func:`ovdense.clip.prompt_templates` or list).
        base_classes: the classes trained on (for the fusion weights; others are novel).
        temperature: initial (or fixed) logit scale.
        learn_temperature: learn the logit scale.
        vlm_temperature: logit scale of the VLM scores (reference 75 for CLIPs trained to 100); None:
            the logit scale of the CLIP that embeds the vocabulary (set by :meth:`prepare`).
        alpha: VLM weight for base classes; beta: for novel classes.
    """

    def __init__(self, *, vocabulary: Any, embed_dim: int, clip: dict | None = None,
                 templates: Sequence[str] | str = 'openai', base_classes: Sequence[str] | None = None,
                 temperature: float = 50.0, learn_temperature: bool = True, vlm_temperature: float | None = 75.0,
                 alpha: float = 0.1, beta: float = 0.8, **kwargs) -> None:
        vocab = Vocabulary.coerce(vocabulary)
        if kwargs.setdefault('num_classes', len(vocab)) != len(vocab):
            raise ValueError(f"num_classes={kwargs['num_classes']} but the vocabulary has {len(vocab)} classes")
        base = tuple(base_classes) if base_classes is not None else tuple(vocab.names)
        unknown = set(base) - set(vocab.names)
        if unknown:
            raise ValueError(f'base classes {sorted(unknown)} are not in the vocabulary {vocab.names}')
        kwargs.setdefault('reg_class_agnostic', True)
        kwargs.setdefault('num_shared_fcs', 2)
        super().__init__(**kwargs)
        self.vocabulary = vocab
        self.embed_dim = embed_dim
        self.clip_cfg = clip
        self.templates = templates
        self.base_classes = base
        self.fc_cls = nn.Linear(self.cls_last_dim, embed_dim)  # projection into the text space
        self.bg_embedding = nn.Parameter(torch.randn(embed_dim) * embed_dim ** -0.5)
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer('log_temperature', log_t)
        if vlm_temperature is not None and vlm_temperature <= 0:
            raise ValueError(f'vlm_temperature must be > 0 (or None: the CLIP logit scale), got {vlm_temperature}')
        self.vlm_temperature = vlm_temperature
        self._clip_logit_scale: float | None = None  # of the CLIP given to prepare()
        self.alpha, self.beta = alpha, beta
        self.text_cache = TextEmbeddingCache()
        self.class_embeddings: torch.Tensor | None = None  # (K, D), normalised

    # ----------------------------------------------------------------- vocabulary
    def set_vocabulary(self, vocabulary: Any) -> None:
        """Change the classes (no retraining: the head has no per-class weights)."""
        self.vocabulary = Vocabulary.coerce(vocabulary)
        self.num_classes = len(self.vocabulary)
        self.class_embeddings = None

    def prepare(self, clip: Any = None) -> torch.Tensor:
        """Compute the vocabulary's text embeddings (K, D) with ``clip`` (or the head's own ``clip``)."""
        from ..clip import build_clip, prompt_templates
        if clip is None:
            if self.clip_cfg is None:
                raise RuntimeError('OVTextBBoxHead has no text encoder: give clip=dict(...) or use it in OVFViT')
            clip = build_clip(**self.clip_cfg)
            clip.load_weights()
        templates = prompt_templates(self.templates) if isinstance(self.templates, str) else self.templates
        self._clip_logit_scale = float(clip.logit_scale.detach().float().exp())
        q = self.text_cache.get(clip, self.vocabulary, templates)
        q2c = self.vocabulary.query_to_class
        emb = torch.zeros(len(self.vocabulary), q.shape[1]).index_add_(0, q2c, q.float().cpu())
        if emb.shape[1] != self.embed_dim:
            raise ValueError(f'text embeddings have {emb.shape[1]} dims, the head embed_dim={self.embed_dim}')
        self.class_embeddings = F.normalize(emb, dim=-1).to(self.fc_cls.weight.device)
        return self.class_embeddings

    def all_embeddings(self) -> torch.Tensor:
        """(K + 1, D): the classes, then the learnt background."""
        if self.class_embeddings is None:
            self.prepare()
        emb = self.class_embeddings.to(self.fc_cls.weight)
        return torch.cat([emb, F.normalize(self.bg_embedding, dim=0)[None]], 0)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, vlm_feats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """RoI features (N, C, 7, 7) [+ VLM box features (N, D)] -> class logits (N, K + 1), box deltas (N, 4)."""
        for conv in self.shared_convs:
            x = conv(x)
        if self.num_shared_fcs > 0:
            if self.with_avg_pool:
                x = self.avg_pool(x)
            x = x.flatten(1)
            for fc in self.shared_fcs:
                x = self.relu(fc(x))
        x_cls, x_reg = x, x
        for conv in self.cls_convs:
            x_cls = conv(x_cls)
        if x_cls.dim() > 2:
            x_cls = (self.avg_pool(x_cls) if self.with_avg_pool else x_cls).flatten(1)
        for fc in self.cls_fcs:
            x_cls = self.relu(fc(x_cls))
        for conv in self.reg_convs:
            x_reg = conv(x_reg)
        if x_reg.dim() > 2:
            x_reg = (self.avg_pool(x_reg) if self.with_avg_pool else x_reg).flatten(1)
        for fc in self.reg_fcs:
            x_reg = self.relu(fc(x_reg))
        bbox_pred = self.fc_reg(x_reg) if self.with_reg else None
        emb = self.all_embeddings()
        cls_score = F.normalize(self.fc_cls(x_cls), dim=-1) @ emb.t() * self.log_temperature.exp()
        if self.training:
            return cls_score, bbox_pred
        if vlm_feats is not None:
            return self.fuse(cls_score, vlm_feats, emb), bbox_pred
        return cls_score.log_softmax(-1), bbox_pred

    @property
    def vlm_scale(self) -> float:
        """The VLM logit scale in use: ``vlm_temperature``, or the CLIP's own when that is None."""
        if self.vlm_temperature is not None:
            return self.vlm_temperature
        if self._clip_logit_scale is None:
            raise RuntimeError('vlm_temperature=None takes the CLIP logit scale: call prepare(clip) first')
        return self._clip_logit_scale

    def fuse(self, cls_score: torch.Tensor, vlm_feats: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """F-ViT's geometric fusion in log space: (N, K + 1) logits, (N, D) VLM box features, (K + 1, D)
        embeddings -> (N, K + 1) log fused scores (unnormalised, as the reference)."""
        vlm = F.normalize(vlm_feats, dim=-1) @ emb.t() * self.vlm_scale
        base_set = set(self.base_classes)
        base = torch.tensor([n in base_set for n in self.vocabulary.names] + [True], device=emb.device)
        w = torch.where(base, torch.tensor(self.alpha, device=emb.device), torch.tensor(self.beta, device=emb.device))
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
    """StandardRoIHead that also pools the CLIP dense map over each box (``vlm_roi_extractor``,
    RoIAlign to 1x1 at the patch stride) for the box head's VLM score fusion at test time."""

    def __init__(self, *, vlm_roi_extractor: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vlm_roi_extractor = MODELS.build(vlm_roi_extractor) if vlm_roi_extractor is not None else None
        self._vlm_feat: torch.Tensor | None = None

    def predict(self, x: tuple, rpn_results_list: list, batch_data_samples: list, rescale: bool = False,
                vlm_feat: torch.Tensor | None = None) -> list:
        self._vlm_feat = vlm_feat if self.vlm_roi_extractor is not None else None
        try:
            return super().predict(x, rpn_results_list, batch_data_samples, rescale=rescale)
        finally:
            self._vlm_feat = None

    def _bbox_forward(self, x: tuple, rois: torch.Tensor) -> dict:
        x = tuple(f.contiguous() for f in x[:self.bbox_roi_extractor.num_inputs])  # see OVFViTBackbone.forward
        bbox_feats = self.bbox_roi_extractor(x, rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        vlm = None
        if self._vlm_feat is not None and not self.training:
            # mmcv's RoIAlign silently misreads non-contiguous maps (open-mmlab/mmcv#2203)
            vlm = self.vlm_roi_extractor([self._vlm_feat.contiguous()], rois).flatten(1)
        cls_score, bbox_pred = self.bbox_head(bbox_feats, vlm)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, bbox_feats=bbox_feats)


@register('MODELS', mmseg=False)
class OVFViT(TwoStageDetector):
    """F-ViT: two-stage detector over :class:`OVFViTBackbone` (``with_dense=True``); the dense CLIP map
    goes to the RoI head for VLM score fusion, the pyramid to the neck. The box head's vocabulary is
    embedded with the backbone's CLIP unless the head names its own."""

    def _features(self, inputs: torch.Tensor) -> tuple[tuple, torch.Tensor | None]:
        feats = self.backbone(inputs)
        dense = None
        if getattr(self.backbone, 'with_dense', False):
            feats, dense = feats[:-1], feats[-1]
        return (self.neck(feats) if self.with_neck else feats), dense

    def _prepare_text(self) -> None:
        head = self.roi_head.bbox_head
        if head.class_embeddings is None:
            head.prepare(None if head.clip_cfg is not None else self.backbone.vit.clip)

    def extract_feat(self, batch_inputs: torch.Tensor) -> tuple:
        return self._features(batch_inputs)[0]

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: list) -> dict:
        self._prepare_text()
        return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        self._prepare_text()
        x, dense = self._features(batch_inputs)
        if batch_data_samples[0].get('proposals', None) is None:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
        else:
            rpn_results_list = [s.proposals for s in batch_data_samples]
        results = self.roi_head.predict(x, rpn_results_list, batch_data_samples, rescale=rescale, vlm_feat=dense)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def set_vocabulary(self, vocabulary: Any) -> None:
        self.roi_head.bbox_head.set_vocabulary(vocabulary)
        if getattr(self.roi_head, 'mask_head', None) is not None:
            self.roi_head.mask_head.num_classes = len(self.roi_head.bbox_head.vocabulary)
