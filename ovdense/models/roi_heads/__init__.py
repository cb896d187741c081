from .fvit_roi_head import OVFViTRoIHead
from .text_bbox_head import OVTextBBoxHead

__all__ = ['OVFViTRoIHead', 'OVTextBBoxHead']
