"""DenseCLIP (Rao et al., CVPR 2022) on mmseg 1.x: pixel-text score maps with context-aware prompting."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize

from ...clip import CLIPModel
from ...registry import register
from ...vocabulary import Vocabulary
from ..text import OVContextDecoder, TextSideMixin, build_text_encoder, reduce_synonyms
from ..utils.chunked import ChunkedPostprocessMixin
from ..utils.renamed import refuse_moved


@register('MODELS', mmdet=False)
class OVDenseCLIP(TextSideMixin, ChunkedPostprocessMixin, EncoderDecoder):
    """DenseCLIP segmentor: backbone pyramid + pixel-text score map concatenated to one level, an mmseg
    neck and decode head, and the auxiliary cross-entropy on the score maps.

    Text side (:class:`~ovdense.models.text.OVTextEncoder` with learnt contexts, frozen text tower of the
    backbone's CLIP): each name is tokenised to ``context_length`` tokens, ``num_contexts`` learnable
    context embeddings are inserted after the start token, and the context decoder refines the embeddings
    with the image (residual scale ``gamma``, initialised at 1e-4). A class's score map is the max over its
    names' maps (``synonyms='max'``).

    Args:
        backbone: :class:`OVDenseCLIPViT` config.
        context_decoder: :class:`OVContextDecoder` config (``visual_dim`` defaults to the CLIP embed dim).
        decode_head, neck, auxiliary_head: mmseg configs.
        text_encoder: :class:`~ovdense.models.text.OVTextEncoder` config: the vocabulary and the learnt
            contexts (reference: ``num_contexts=8``, ``context_length=5``).
        score_concat_index: pyramid level that gets the score maps (reference 2 for ViT).
        tau: temperature of the score-map loss (reference 0.07).
        score_loss_weight: weight of that loss (reference 0.4; 0 disables it).
    """

    def __init__(self, backbone: dict, context_decoder: dict, decode_head: dict, *, text_encoder: dict,
                 score_concat_index: int = 2, tau: float = 0.07,
                 score_loss_weight: float = 0.4, neck: dict | None = None, auxiliary_head: dict | None = None,
                 train_cfg: dict | None = None, test_cfg: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None, **moved: Any) -> None:
        refuse_moved('OVDenseCLIP', moved, dict(
            vocabulary="the classes are the text encoder's: text_encoder=dict(vocabulary=...), or per call "
                       '(inference_model(..., vocabulary=...))'))
        super().__init__(backbone=dict(backbone, with_embeddings=True), decode_head=decode_head, neck=neck, auxiliary_head=auxiliary_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not 0 <= score_concat_index < 4:
            raise ValueError(f'score_concat_index must be in 0..3, got {score_concat_index}')
        clip = self.backbone.clip
        clip.lock_text()  # the text encoder is frozen (reference: lr_mult 0)
        width = clip.model.token_embedding.weight.shape[1]
        self.context_decoder = OVContextDecoder(**dict(dict(visual_dim=clip.embed_dim), **context_decoder))
        self.text_encoder = build_text_encoder(dict(text_encoder, context_width=width), num_contexts=8,
                                               context_length=5)
        self.gamma = nn.Parameter(torch.full((clip.embed_dim,), 1e-4))
        self.score_concat_index = score_concat_index
        self.tau = tau
        self.score_loss_weight = score_loss_weight

    @property
    def text_clip(self) -> CLIPModel:
        return self.backbone.clip

    def prompt_embeddings(self, vocabulary: Vocabulary | None = None) -> torch.Tensor:
        """(Q, D) unnormalised text embeddings of the names (default: the model's) with the learnt context (before
        the decoder)."""
        vocab = vocabulary if vocabulary is not None else self.vocabulary
        return self.text_encoder.encode_with_contexts(self.text_clip, vocab.queries)

    def features(self, inputs: torch.Tensor, vocabulary: Vocabulary | None = None
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Backbone levels, levels with the score maps concatenated (after the neck), score maps
        (B, K, h, w) and the image-conditioned text embeddings (B, Q, D), for ``vocabulary`` (default: the model's;
        the head was trained for its number of classes)."""
        vocab = vocabulary if vocabulary is not None else self.vocabulary
        if len(vocab) != len(self.vocabulary):
            raise ValueError(f'DenseCLIP concatenates one score map per class into the pyramid its head was trained '
                             f'on: {len(self.vocabulary)} classes, not {len(vocab)}')
        *levels, global_emb, visual = self.backbone(inputs)
        global_emb = global_emb.flatten(1)
        B, D, h, w = visual.shape
        context = torch.cat([global_emb[:, None], visual.flatten(2).transpose(1, 2)], 1)
        text = self.prompt_embeddings(vocab)[None].expand(B, -1, -1)
        text = text + self.gamma * self.context_decoder(text, context)
        score = torch.einsum('bdhw,bqd->bqhw', F.normalize(visual, dim=1), F.normalize(text, dim=2))
        score = reduce_synonyms(score, vocab.query_to_class, len(vocab), dim=1)
        feats = list(levels)
        feats[self.score_concat_index] = torch.cat([feats[self.score_concat_index], score], 1)
        if self.with_neck:
            feats = list(self.neck(feats))
        return levels, feats, score, text

    def extract_feat(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        return self.features(inputs)[1]

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """(B, K, H, W) logits, for the vocabulary the images' metainfo carries (default: the model's)."""
        feats = self.features(inputs, self.sample_vocabulary(batch_img_metas))[1]
        return self.decode_head.predict(feats, batch_img_metas, self.test_cfg)

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        levels, feats, score, _ = self.features(inputs)
        losses = self._decode_head_forward_train(feats, data_samples)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(levels, data_samples))
        if self.score_loss_weight > 0:
            gt = torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).long()
            logits = resize(score / self.tau, size=gt.shape[-2:], mode='bilinear', align_corners=False)
            losses['aux_score.loss_ce'] = self.score_loss_weight * F.cross_entropy(
                logits, gt, ignore_index=self.decode_head.ignore_index)
        return losses
