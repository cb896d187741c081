"""Data preprocessor for open-vocabulary segmentation."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmseg.models.data_preprocessor import SegDataPreProcessor

from ..registry import register


@register('MODELS', mmdet=False)
class OVSegDataPreProcessor(SegDataPreProcessor):
    """mmseg's ``SegDataPreProcessor`` that also batches test images of different sizes.

    mmseg requires equal sizes at test time. Here smaller images are zero-padded at the right and
    bottom to the largest one; each sample's ``img_shape`` still gives its own valid region, which
    the ovdense segmentors crop back before inference, so padding never changes a prediction.
    """

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        if training or len({tuple(x.shape[1:]) for x in data['inputs']}) <= 1:
            return super().forward(data, training)
        h = max(x.shape[1] for x in data['inputs'])
        w = max(x.shape[2] for x in data['inputs'])
        data = dict(data)
        data['inputs'] = [F.pad(x, (0, w - x.shape[2], 0, h - x.shape[1])) for x in data['inputs']]
        return super().forward(data, training)
