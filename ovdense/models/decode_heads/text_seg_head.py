"""A decode head whose per-pixel classifier is the class embeddings it is given."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from ...registry import register
from ..text import ClassEmbeddings


@register('MODELS', mmdet=False)
class OVTextSegHead(BaseDecodeHead):
    """Multi-level features -> per-pixel embeddings in the text space -> cosine logits against the class
    embeddings it is given, times a learnt temperature.

    ``forward((feats, text, excluded))``: ``feats`` the backbone levels, ``text`` the
    :class:`~ovdense.models.text.ClassEmbeddings` (synonyms reduced by their rule), ``excluded`` None or (K,)
    bool, classes left out of the softmax (unseen classes in training); returns (B, K, H, W) logits.

    Args:
        in_channels: channels of the selected inputs (``in_index``), concatenated after resizing to the
            first one's size.
        channels: hidden channels.
        embed_dim: text-embedding dimension.
        num_convs: 3x3 conv layers before the embedding projection.
        init_scale: initial logit scale (CLIP's 1/0.07).
    """

    def __init__(self, in_channels: Sequence[int], channels: int, embed_dim: int, *, num_convs: int = 2,
                 init_scale: float = 1 / 0.07, **kwargs) -> None:
        kwargs.setdefault('num_classes', 1)  # the classes come from the vocabulary, not from a conv
        kwargs.setdefault('threshold', 0.5)  # unused (outputs are sized by the vocabulary); silences mmseg
        kwargs.setdefault('input_transform', 'resize_concat')
        kwargs.setdefault('in_index', list(range(len(in_channels))))
        kwargs.setdefault('init_cfg', dict(type='Normal', std=0.01, override=dict(name='embed')))
        super().__init__(in_channels=list(in_channels), channels=channels, **kwargs)
        self.conv_seg = None  # replaced by the text classifier
        convs, c = [], self.in_channels
        for _ in range(num_convs):
            convs.append(ConvModule(c, channels, 3, padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                                    act_cfg=self.act_cfg))
            c = channels
        self.convs = nn.Sequential(*convs)
        self.embed = nn.Conv2d(c, embed_dim, 1)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    def forward(self, inputs: tuple[Sequence[torch.Tensor], ClassEmbeddings, torch.Tensor | None]) -> torch.Tensor:
        feats, text, excluded = inputs
        x = self.convs(self._transform_inputs(feats))
        emb = F.normalize(self.embed(self.dropout(x) if self.dropout is not None else x), dim=1)
        logits = text.reduce(torch.einsum('bdhw,qd->bqhw', emb, text.queries.to(emb.dtype)), dim=1)
        logits = logits * self.logit_scale.exp().clamp(max=100)
        if excluded is not None:
            # a large finite value: -inf would turn into NaN when the logits are resized
            logits = logits.masked_fill(excluded.to(logits.device).view(1, -1, 1, 1), -1e4)
        return logits
