from .pamr import PAMR
from .slide import slide_windows

__all__ = ['PAMR', 'slide_windows']
