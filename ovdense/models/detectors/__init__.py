from .fvit import OVFViT

__all__ = ['OVFViT']
