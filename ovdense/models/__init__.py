"""Importing this package registers every ovdense module into mmseg's and mmdet's registries."""
from .backbones import DENSE_MODES, OVCLIPViT
from .data_preprocessor import OVSegDataPreProcessor
from .clipself import OVCLIPSelf
from .denseclip import OVContextDecoder, OVDenseCLIP, OVDenseCLIPViT
from .pretrainer import OVCLIPPretrainer
from .vfm_pretrainer import OVVFMPretrainer
from .text_seg import OVTextSegHead, OVTextSegmentor
from .detection import OVFViT, OVFViTBackbone, OVFViTRoIHead, OVTextBBoxHead
from .segmentors import OVSegmentor
from .text import ClassEmbeddings, OVTextEncoder
from .. import datasets, fileio, hooks  # noqa: F401  (register datasets, file backend and hooks too)
from ..evaluation import ov_coco, region, zero_shot_iou  # noqa: F401  (registers the metrics)

__all__ = ['OVCLIPViT', 'DENSE_MODES', 'OVSegmentor', 'OVSegDataPreProcessor', 'OVCLIPPretrainer', 'OVVFMPretrainer', 'OVCLIPSelf', 'OVDenseCLIP', 'OVDenseCLIPViT',
           'OVContextDecoder', 'OVTextSegHead', 'OVTextSegmentor', 'OVFViT', 'OVFViTBackbone', 'OVFViTRoIHead',
           'OVTextBBoxHead', 'OVTextEncoder', 'ClassEmbeddings']
