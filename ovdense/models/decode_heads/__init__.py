from .text_seg_head import OVTextSegHead

__all__ = ['OVTextSegHead']
