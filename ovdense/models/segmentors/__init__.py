from .catseg import OVCATSeg
from .denseclip import OVDenseCLIP
from .ov_segmentor import OVSegmentor
from .text_segmentor import OVTextSegmentor

__all__ = ['OVCATSeg', 'OVSegmentor', 'OVTextSegmentor', 'OVDenseCLIP']
