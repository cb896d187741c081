"""CLIPSelf's loss (Wu et al., ICLR 2024): a student region feature vs the teacher's embedding of the image crop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...registry import register
from .base import DistillBatch, OVDistillLoss


@register('MODELS')
class OVRegionCosineLoss(OVDistillLoss):
    """``1 - cos(student region feature, teacher crop embedding)`` per box (DeCLIP's "content" loss).

    Args:
        weight: the loss's weight.
    """

    name = 'cosine'
    log_name = 'cos_dissim'

    def forward(self, batch: DistillBatch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            teacher = F.normalize(batch.teacher.encode_image(batch.crops), dim=-1)
        student = F.normalize(batch.region_features(batch), dim=-1)
        return (1 - (student * teacher).sum(-1)).sum(), torch.tensor(float(len(teacher)), device=teacher.device)
