from .denseclip import OVDenseCLIP
from .ov_segmentor import OVSegmentor
from .text_segmentor import OVTextSegmentor

__all__ = ['OVSegmentor', 'OVTextSegmentor', 'OVDenseCLIP']
