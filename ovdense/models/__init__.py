"""Importing this package registers every ovdense module into mmseg's and mmdet's registries."""
from .backbones import DENSE_MODES, OVCLIPViT
from .data_preprocessor import OVSegDataPreProcessor
from .pretrainer import OVCLIPPretrainer
from .segmentors import OVSegmentor
from .. import datasets, hooks  # noqa: F401  (register datasets and hooks too)

__all__ = ['OVCLIPViT', 'DENSE_MODES', 'OVSegmentor', 'OVSegDataPreProcessor', 'OVCLIPPretrainer']
