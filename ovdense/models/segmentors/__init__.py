from .ov_segmentor import OVSegmentor

__all__ = ['OVSegmentor']
