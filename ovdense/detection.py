"""Importing this module registers ovdense's detection modules into mmdet's registries (F-ViT, its RoI and
box heads, the OV-COCO / OV-LVIS datasets and metrics) and the shared ones (backbones, text encoder,
CLIPSelf, hooks): ``custom_imports=dict(imports=['ovdense.detection'])`` in a detection config."""
from . import models  # noqa: F401  (the shared modules)
from .registry import enable_mmdet

enable_mmdet()

from .datasets.det import OVCocoDataset, OVLVISV1Dataset  # noqa: E402
from .evaluation import ov_coco  # noqa: E402, F401  (OVCocoMetric, OVLVISMetric)
from .models.detectors import OVFViT  # noqa: E402
from .models.roi_heads import OVFViTRoIHead, OVTextBBoxHead  # noqa: E402

__all__ = ['OVFViT', 'OVFViTRoIHead', 'OVTextBBoxHead', 'OVCocoDataset', 'OVLVISV1Dataset']
