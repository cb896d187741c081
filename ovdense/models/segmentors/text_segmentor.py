"""Trained open-vocabulary segmentation: a decode head whose classifier is the text embedding of the
vocabulary, trained on seen classes and applied to any vocabulary at test time."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder

from ...clip import CLIPModel
from ...registry import register
from ..text import ClassEmbeddings, TextSideMixin, build_text_encoder
from ..utils.chunked import ChunkedPostprocessMixin


@register('MODELS', mmdet=False)
class OVTextSegmentor(TextSideMixin, ChunkedPostprocessMixin, EncoderDecoder):
    """EncoderDecoder over a frozen CLIP backbone (:class:`OVCLIPViT`) with an :class:`OVTextSegHead`.

    The vocabulary is an input: ``set_vocabulary`` changes the classes without retraining. During training
    the classes named in ``unseen`` are left out: their logits are removed from the softmax and their pixels
    ignored, so nothing about them is learnt (zero-shot protocol).

    Args:
        text_encoder: :class:`~ovdense.models.text.OVTextEncoder` config; its vocabulary is the classes in
            the order of the dataset's labels.
        unseen: class names never trained on (e.g. the dataset's ``novel_classes``).
        clip_weight: ``(seen, other)`` weights of the training-free CLIP prediction (the backbone's
            dense map against the same class embeddings) in a geometric ensemble with the head at test
            time, ``p = p_head^(1-w) * p_clip^w``: ``seen`` for the classes trained on, ``other`` for
            every other class of the test vocabulary (ZegFormer / ViLD-style; ``(0, 0)`` = head only).
        clip_logit_scale: temperature of the training-free prediction.
    """

    def __init__(self, backbone: dict, decode_head: dict, *, text_encoder: dict, unseen: Sequence[str] = (),
                 clip_weight: Sequence[float] = (0.0, 0.0),
                 clip_logit_scale: float = 40.0, **kwargs) -> None:
        kwargs['test_cfg'] = ConfigDict(kwargs.get('test_cfg') or dict(mode='whole'))
        super().__init__(backbone=backbone, decode_head=decode_head, **kwargs)
        if len(clip_weight) != 2 or not all(0.0 <= w <= 1.0 for w in clip_weight):
            raise ValueError(f'clip_weight must be two weights in [0, 1] (seen, other), got {clip_weight}')
        self.clip_weight = tuple(float(w) for w in clip_weight)
        self.clip_logit_scale = clip_logit_scale
        self.text_encoder = build_text_encoder(text_encoder)
        names = self.vocabulary.names
        missing = set(unseen) - set(names)
        if missing:
            raise ValueError(f'unseen classes {sorted(missing)} are not in the vocabulary {names}')
        self.unseen = tuple(unseen)
        self.seen = frozenset(n for n in names if n not in self.unseen)  # what the head learns

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.clip

    def _head_inputs(self, feats: Sequence[torch.Tensor], text: ClassEmbeddings) -> tuple:
        """(feats, class embeddings, excluded classes) for the decode head: the classes are the embeddings' (no
        attribute of the model or the head is sized per call)."""
        excluded = None
        if self.training and self.unseen:
            excluded = torch.tensor([n in self.unseen for n in text.vocabulary.names])
        return feats, text, excluded

    def _decode_head_forward_train(self, inputs: list[torch.Tensor], data_samples: list) -> dict:
        head_inputs = self._head_inputs(inputs, self.class_embeddings())
        return super()._decode_head_forward_train(head_inputs, data_samples)

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        if self.unseen:
            ids = [i for i, n in enumerate(self.vocabulary.names) if n in self.unseen]
            for s in data_samples:  # unseen pixels are ignored, as if unlabelled
                gt = s.gt_sem_seg.data.clone()
                for i in ids:
                    gt[gt == i] = self.decode_head.ignore_index
                s.gt_sem_seg.data = gt
        return super().loss(inputs, data_samples)

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """(B, K, H, W) logits of the head, or log-probabilities of the CLIP ensemble."""
        feats = self.extract_feat(inputs)
        text = self.class_embeddings(self.sample_vocabulary(batch_img_metas))
        logits = self.decode_head.predict(self._head_inputs(feats, text), batch_img_metas, self.test_cfg)
        if self.training or self.clip_weight == (0.0, 0.0):
            return logits
        clip_logits = text.reduce(torch.einsum('bdhw,qd->bqhw', F.normalize(feats[-1], dim=1),
                                               text.queries.to(feats[-1].dtype)), dim=1)
        clip_logits = F.interpolate(clip_logits * self.clip_logit_scale, size=logits.shape[2:], mode='bilinear',
                                    align_corners=False)
        w = torch.tensor([self.clip_weight[0] if n in self.seen else self.clip_weight[1]
                          for n in text.vocabulary.names], device=logits.device).view(1, -1, 1, 1)
        return (1 - w) * logits.log_softmax(1) + w * clip_logits.log_softmax(1)

    def slide_inference(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """mmseg's sliding-window inference, its output sized by this call's vocabulary (mmseg reads
        ``self.out_channels``, which would have to be rewritten per call)."""
        (hs, ws), (hc, wc) = self.test_cfg.stride, self.test_cfg.crop_size
        B, _, H, W = inputs.shape
        vocab = self.sample_vocabulary(batch_img_metas)
        preds = inputs.new_zeros((B, len(vocab if vocab is not None else self.vocabulary), H, W))
        count = inputs.new_zeros((B, 1, H, W))
        for i in range(max(H - hc + hs - 1, 0) // hs + 1):
            for j in range(max(W - wc + ws - 1, 0) // ws + 1):
                y2, x2 = min(i * hs + hc, H), min(j * ws + wc, W)
                y1, x1 = max(y2 - hc, 0), max(x2 - wc, 0)
                crop = inputs[:, :, y1:y2, x1:x2]
                batch_img_metas[0]['img_shape'] = crop.shape[2:]
                preds[:, :, y1:y2, x1:x2] += self.encode_decode(crop, batch_img_metas)
                count[:, :, y1:y2, x1:x2] += 1
        return preds / count

    def _forward(self, inputs: torch.Tensor, data_samples: list | None = None) -> torch.Tensor:
        return self.decode_head.forward(self._head_inputs(self.extract_feat(inputs), self.class_embeddings()))
