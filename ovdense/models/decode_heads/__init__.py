from .catseg_head import OVCATSegHead
from .text_seg_head import OVTextSegHead

__all__ = ['OVCATSegHead', 'OVTextSegHead']
