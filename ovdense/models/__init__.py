"""Importing this package registers ovdense's segmentation and shared modules into mmseg's registries
(``custom_imports=dict(imports=['ovdense.models'])``); it never imports mmdet. The same line serves mmdet configs:
the detection modules are imported when one is built (:func:`ovdense.registry.register_detection_on_demand`), or
at once by ``import ovdense.detection``."""
from ..registry import import_mmseg_models, register_detection_on_demand

import_mmseg_models()  # first: mmseg's models without mmdet's (see ovdense.registry)

from .. import fileio, hooks, runner, visualizer  # noqa: F401  (the atomic checkpoint backend, OVRunner (weights-only
#                                                   loading), hooks, the visualiser naming each prediction's classes)
from .. import datasets  # noqa: F401  (registers the segmentation / CLIPSelf datasets)
from ..evaluation import region, zero_shot_iou  # noqa: F401  (registers the metrics)
from .backbones import OVCLIPViT, OVDenseCLIPViT, OVFViTBackbone
from .data_preprocessor import OVSegDataPreProcessor
from .decode_heads import OVTextSegHead
from .losses import OVDistillLoss, OVRegionCosineLoss
from .methods import OVDenseMethod, registered_methods
from .pretrainers import OVCLIPPretrainer, OVCLIPSelf, OVVFMPretrainer
from .segmentors import OVDenseCLIP, OVSegmentor, OVTextSegmentor
from .text import ClassEmbeddings, OVContextDecoder, OVTextEncoder

register_detection_on_demand()  # the same custom_imports line serves mmdet configs (see ovdense.registry)

__all__ = ['OVCLIPViT', 'OVDenseCLIPViT', 'OVFViTBackbone', 'OVSegmentor', 'OVTextSegmentor',
           'OVDenseCLIP', 'OVTextSegHead', 'OVSegDataPreProcessor', 'OVCLIPSelf', 'OVCLIPPretrainer',
           'OVVFMPretrainer', 'OVTextEncoder', 'OVContextDecoder', 'ClassEmbeddings', 'OVDenseMethod',
           'registered_methods', 'OVDistillLoss', 'OVRegionCosineLoss']
