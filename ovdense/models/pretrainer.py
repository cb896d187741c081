"""Contrastive CLIP pretraining (for small CLIPs trained from scratch, e.g. on the synthetic world)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from ..clip import build_clip
from ..registry import register


@register('MODELS')
class OVCLIPPretrainer(BaseModel):
    """Train an open_clip CLIP with the symmetric InfoNCE loss on image-caption batches.

    Identical captions in a batch are all positives of each other (soft targets), so frequent short
    captions ("a picture with a circle.") do not become false negatives.

    Args:
        model_cfg: open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``...).
        data_preprocessor: mmengine ``ImgDataPreprocessor`` config (mean/std, channel order).
    """

    def __init__(self, model_cfg: dict, *, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.model_cfg = dict(model_cfg)
        self.clip = build_clip(model_cfg=model_cfg)

    def forward(self, inputs: torch.Tensor, data_samples: list[str] | None = None, mode: str = 'loss'):
        img = self.clip.encode_image(inputs, normalize=True)
        if mode == 'tensor':
            return img
        txt = self.clip.encode_text(list(data_samples), normalize=True)
        logits = self.clip.logit_scale.exp().clamp(max=100) * img @ txt.t()
        same = torch.tensor([[a == b for b in data_samples] for a in data_samples], device=logits.device).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        if mode == 'loss':
            return dict(loss=loss)
        raise ValueError(f"unknown mode '{mode}'; valid: ['loss', 'tensor']")

    def export(self, out_dir: str | os.PathLike, name: str, *, dtype: torch.dtype | None = None) -> tuple[Path, Path]:
        """Write ``name.json`` (open_clip model config) and ``name.safetensors`` (weights, cast to ``dtype``
        when given) for the adapter."""
        return self.clip.save(out_dir, name, dtype=dtype)
