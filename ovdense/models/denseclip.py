"""DenseCLIP (Rao et al., CVPR 2022) on mmseg 1.x: pixel-text score maps with context-aware prompting."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize

from ..clip import CLIPModel
from ..registry import register
from .backbones.clip_vit import OVCLIPViT, interpolate_pos_embed
from .text import TextSideMixin, build_text_encoder, reduce_synonyms
from .utils.chunked import ChunkedPostprocessMixin


@register('MODELS', mmdet=False)
class OVDenseCLIPViT(BaseModule):
    """DenseCLIP's CLIP ViT backbone: a 4-level pyramid from chosen blocks, and the projected embeddings.

    As the reference: the CLS token receives ``class_embedding`` twice (as the token and inside its
    position term), patch positions are resized bilinearly to the grid, the patch tokens after each block
    of ``out_indices`` are turned into maps at 4x, 2x, 1x and 0.5x (patch 16; 2x, 1x, 0.5x, 0.25x for
    patch 8), and the final tokens go through ``ln_post`` and the projection.

    Args:
        clip: :class:`CLIPModel` or :func:`build_clip` keyword arguments.
        out_indices: four blocks (reference ViT-B/16: 3, 5, 7, 11).
        norm_cfg: norm of the first up-sampling branch (reference: SyncBN).
    """

    def __init__(self, clip: CLIPModel | dict, *, out_indices: Sequence[int] = (3, 5, 7, 11),
                 norm_cfg: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(out_indices) != 4:
            raise ValueError(f'out_indices must name 4 blocks, got {list(out_indices)}')
        self.vit = OVCLIPViT(clip, 'vanilla', out_indices=out_indices, pos_interp='bilinear', frozen=False)
        c = self.vit.tower.width
        norm_cfg = norm_cfg or dict(type='SyncBN', requires_grad=True)
        p = self.vit.patch_size
        if p == 16:
            self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2), build_norm_layer(norm_cfg, c)[1],
                                      nn.GELU(), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn2 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn3 = nn.GroupNorm(1, c)
            self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, 2))
        elif p == 8:
            self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2))
            self.fpn2 = nn.GroupNorm(1, c)
            self.fpn3 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, 2))
            self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(4, 4))
        else:
            raise ValueError(f'DenseCLIP pyramids are defined for patch sizes [8, 16], got {p}')

    @property
    def clip(self) -> CLIPModel:
        return self.vit.clip

    def init_weights(self) -> None:
        """Load the CLIP weights (once); the pyramid branches keep their initialisation."""
        self.vit.init_weights()

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> (4 pyramid maps (B, width, .., ..), global embedding (B, D), patch embeddings
        (B, D, h, w))."""
        t, vit = self.vit.tower, self.vit
        feat = t.conv1(x.to(t.conv1.weight.dtype))
        B, C, h, w = feat.shape
        tokens = feat.flatten(2).transpose(1, 2)
        cls = t.class_embedding.to(tokens.dtype)
        pos = interpolate_pos_embed(t.positional_embedding, (h, w), method='bilinear').to(tokens.dtype)
        pos = torch.cat([pos[:1] + cls, pos[1:]])  # the reference adds class_embedding to the CLS position too
        x = vit._ln(t.ln_pre, torch.cat([cls.expand(B, 1, C), tokens], 1) + pos)
        maps = []
        for i, blk in enumerate(t.blocks):
            x = vit.block(blk, x)
            if i in vit.out_indices:
                maps.append(x[:, 1:].transpose(1, 2).reshape(B, C, h, w))
        maps = [op(m) for op, m in zip((self.fpn1, self.fpn2, self.fpn3, self.fpn4), maps)]
        emb = vit._ln(t.ln_post, x) @ t.proj
        return maps, emb[:, 0], emb[:, 1:].transpose(1, 2).reshape(B, -1, h, w)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, proj_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        B, N, C = q.shape
        M = kv.shape[1]
        h = self.heads
        q = self.q_proj(q).view(B, N, h, C // h).transpose(1, 2)
        k = self.k_proj(kv).view(B, M, h, C // h).transpose(1, 2)
        v = self.v_proj(kv).view(B, M, h, C // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, heads, dropout)
        self.cross_attn = _Attention(dim, heads, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        q = self.norm1(x)
        x = x + self.self_attn(q, q)
        x = x + self.cross_attn(self.norm2(x), mem)
        return x + self.dropout(self.mlp(self.norm3(x)))


@register('MODELS', mmdet=False)
class OVContextDecoder(BaseModule):
    """DenseCLIP's post-model prompting: text embeddings (B, K, D) attend to the visual context
    (B, N, D) (global + patch embeddings) through a small transformer decoder; returns (B, K, D)."""

    def __init__(self, visual_dim: int, *, transformer_width: int = 256, transformer_heads: int = 4,
                 transformer_layers: int = 3, dropout: float = 0.1, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.memory_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width),
                                         nn.LayerNorm(transformer_width))
        self.text_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width))
        self.decoder = nn.ModuleList([_DecoderLayer(transformer_width, transformer_heads, dropout)
                                      for _ in range(transformer_layers)])
        self.out_proj = nn.Sequential(nn.LayerNorm(transformer_width), nn.Linear(transformer_width, visual_dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        mem = self.memory_proj(visual)
        x = self.text_proj(text)
        for layer in self.decoder:
            x = layer(x, mem)
        return self.out_proj(x)


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
                 init_cfg: dict | None = None) -> None:
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck, auxiliary_head=auxiliary_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not 0 <= score_concat_index < 4:
            raise ValueError(f'score_concat_index must be in 0..3, got {score_concat_index}')
        clip = self.backbone.clip
        for p in clip.text_parameters():  # the text encoder is frozen (reference: lr_mult 0)
            p.requires_grad_(False)
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

    def prompt_embeddings(self) -> torch.Tensor:
        """(Q, D) unnormalised text embeddings of the names with the learnt context (before the decoder)."""
        return self.text_encoder.encode_with_contexts(self.text_clip, self.vocabulary.queries)

    def features(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Backbone levels, levels with the score maps concatenated (after the neck), score maps
        (B, K, h, w) and the image-conditioned text embeddings (B, Q, D)."""
        levels, global_emb, visual = self.backbone(inputs)
        B, D, h, w = visual.shape
        context = torch.cat([global_emb[:, None], visual.flatten(2).transpose(1, 2)], 1)
        vocab = self.vocabulary
        text = self.prompt_embeddings()[None].expand(B, -1, -1)
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
