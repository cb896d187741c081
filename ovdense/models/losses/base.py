"""What a distillation loss is: a registered module that turns one training batch into a sum and a count."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from ...clip import CLIPModel
    from ..backbones.clip_vit import OVCLIPViT
    from ..methods import DenseTokens


@dataclass
class DistillBatch:
    """One batch of region distillation, as every loss sees it.

    Attributes:
        images: (B, 3, H, W) normalised student inputs.
        boxes: per image (n_i, 4) normalised x0, y0, x1, y1.
        crops: (N, 3, c, c) the teacher's image crops of all boxes, in order.
        student: the trained dense backbone.
        teacher: the frozen CLIP.
        region_features: the pretrainer's student region features of the boxes, ``(batch) -> (N, D)`` (pooled from
            :meth:`tokens` unless the pooling runs the tower itself).
        samples: the data samples (anything else a loss needs, e.g. a VFM's input).
        cache: computed once and shared between the losses of a step (:meth:`tokens`).
    """
    images: torch.Tensor
    boxes: Sequence[torch.Tensor]
    crops: torch.Tensor
    student: 'OVCLIPViT'
    teacher: 'CLIPModel'
    region_features: Callable[['DistillBatch'], torch.Tensor]
    samples: Sequence[dict] = ()
    cache: dict[str, Any] = field(default_factory=dict)

    def tokens(self) -> 'DenseTokens':
        """The student's dense forward of :attr:`images` (its method's tokens, grid and extras), run once per
        batch."""
        if 'tokens' not in self.cache:
            self.cache['tokens'] = self.student.forward_tokens(self.images)
        return self.cache['tokens']


class OVDistillLoss(nn.Module):
    """Base of the distillation losses.

    A loss returns the **sum** of its per-item terms and their **count** for the batch; the pretrainer averages over
    the global batch (all processes) and multiplies by ``weight``, logging ``loss_{name}`` (optimised) and
    ``{log_name}`` (the global mean, unweighted).

    Args:
        weight: the loss's weight in the sum.
    """

    name: ClassVar[str] = ''
    log_name: ClassVar[str] = ''

    def __init__(self, *, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum, count) over the batch."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f'{self.name}, weight={self.weight}'


def build_distill_loss(cfg: dict | OVDistillLoss) -> OVDistillLoss:
    """A loss from its config ``dict(type=..., weight=..., **knobs)`` (mmseg's registry) or an instance."""
    if isinstance(cfg, OVDistillLoss):
        return cfg
    from mmseg.registry import MODELS
    cls = MODELS.get(cfg.get('type')) if isinstance(cfg, dict) else None
    if cls is None or not (isinstance(cls, type) and issubclass(cls, OVDistillLoss)):
        known = sorted(k for k, c in MODELS.module_dict.items() if isinstance(c, type) and issubclass(c, OVDistillLoss))
        raise ValueError(f'unknown distillation loss {cfg!r}; registered: {known}')
    return cls(**{k: v for k, v in cfg.items() if k != 'type'})
