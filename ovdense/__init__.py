"""ovdense: open-vocabulary dense prediction from CLIP vision transformers.

Importing ``ovdense`` is cheap: open_clip, mmseg and mmdet are imported only when used.
``import ovdense.models`` registers the segmentation and shared modules into mmseg's registries (no mmdet);
``import ovdense.detection`` registers the detection modules into mmdet's, and the shared ones too.
"""
from __future__ import annotations

import importlib
from typing import Any

from .version import __version__
from .vocabulary import Vocabulary

_LAZY = {
    'build_clip': 'ovdense.clip',
    'CLIPModel': 'ovdense.clip',
    'prompt_templates': 'ovdense.clip',
}

__all__ = ['__version__', 'Vocabulary', *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovdense' has no attribute '{name}'")
