"""The CLIP as trained: every block standard (the baseline of every dense method)."""
from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVVanilla']


@register('MODELS')
class OVVanilla(OVDenseMethod):
    """Standard blocks throughout: softmax(q k^T) attention, residual and FFN kept."""

    name = 'vanilla'
