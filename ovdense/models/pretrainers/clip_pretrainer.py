"""Contrastive CLIP pretraining (for small CLIPs trained from scratch, e.g. on the synthetic world)."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from ...clip import build_clip
from ...registry import register


def describes(caption_key: str, image_key: str) -> bool:
    """Whether a caption's assertions hold for an image. Keys are JSON ``[context, [[attr, ...], ...]]``
    (see :func:`~ovdense.datasets.captions.image_key`); the caption's ``null`` entries match anything, its
    objects must pair one-to-one with the image's."""
    return _describes(json.loads(caption_key), json.loads(image_key))


def _describes(caption: list, image: list) -> bool:
    (c_ctx, c_objs), (i_ctx, i_objs) = caption, image
    if (c_ctx is not None and c_ctx != i_ctx) or len(c_objs) != len(i_objs):
        return False
    return any(all(all(c is None or c == v for c, v in zip(co, io)) for co, io in zip(c_objs, perm))
               for perm in itertools.permutations(i_objs))


@register('MODELS')
class OVCLIPPretrainer(BaseModel):
    """Train an open_clip CLIP with the symmetric InfoNCE loss on image-caption batches.

    Identical captions in a batch are all positives of each other (soft targets), so frequent short
    captions ("a picture with a circle.") do not become false negatives. When the batch carries semantic
    keys (``data_samples = dict(caption=[...], caption_key=[...], image_key=[...])``), every caption that
    :func:`describes` an image is its positive.

    Args:
        model_cfg: open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``...).
        data_preprocessor: mmengine ``ImgDataPreprocessor`` config (mean/std, channel order).
    """

    def __init__(self, model_cfg: dict, *, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.model_cfg = dict(model_cfg)
        self.clip = build_clip(model_cfg=model_cfg)

    def forward(self, inputs: torch.Tensor, data_samples: list[str] | dict | None = None, mode: str = 'loss'):
        img = self.clip.encode_image(inputs, normalize=True)
        if mode == 'tensor':
            return img
        if isinstance(data_samples, dict):
            captions = list(data_samples['caption'])
            said = [json.loads(k) for k in data_samples['caption_key']]  # parsed once, compared B x B
            shown = [json.loads(k) for k in data_samples['image_key']]
            pos = [[_describes(c, i) for c in said] for i in shown]
        else:
            captions = list(data_samples)
            pos = [[a == b for b in captions] for a in captions]
        txt = self.clip.encode_text(captions, normalize=True)
        logits = self.clip.logit_scale.exp().clamp(max=100) * img @ txt.t()  # (B images, B captions)
        pos = torch.tensor(pos, device=logits.device).float()
        pos = torch.maximum(pos, torch.eye(len(captions), device=logits.device))  # its own caption, always
        loss = 0.5 * (F.cross_entropy(logits, pos / pos.sum(1, keepdim=True))
                      + F.cross_entropy(logits.t(), pos.t() / pos.t().sum(1, keepdim=True)))
        if mode == 'loss':
            return dict(loss=loss)
        raise ValueError(f"unknown mode '{mode}'; valid: ['loss', 'tensor']")

    def export(self, out_dir: str | os.PathLike, name: str, *, dtype: torch.dtype | None = None) -> tuple[Path, Path]:
        """Write ``name.json`` (open_clip model config) and ``name.safetensors`` (weights, cast to ``dtype``
        when given) for :func:`ovdense.clip.build_clip`."""
        return self.clip.save(out_dir, name, dtype=dtype)
