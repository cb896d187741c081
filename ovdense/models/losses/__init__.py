"""Region-distillation losses as components: a pretrainer (:class:`~ovdense.models.pretrainers.OVCLIPSelf`) sums the
ones named in its config, each with its weight."""
from .base import DistillBatch, OVDistillLoss, build_distill_loss
from .context import OVContextLoss, student_similarity, vfm_similarity
from .region_cosine import OVRegionCosineLoss

__all__ = ['DistillBatch', 'OVDistillLoss', 'build_distill_loss', 'OVRegionCosineLoss', 'OVContextLoss',
           'student_similarity', 'vfm_similarity']
