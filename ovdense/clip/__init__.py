"""The only part of ovdense that imports open_clip and timm.

Everything else sees :class:`CLIPModel` (tensors in, tensors out) and :class:`ViTTower`, a view of
the vision transformer made of plain ``torch.nn`` modules.
"""
from .adapter import (SUPPORTED_ARCHITECTURES, CheckpointError, CLIPModel,
                      PretrainedWeightsUnavailable, ViTBlock, ViTTower,
                      build_clip, load_state_dict_file, prompt_templates)
from .vfm import VFM, VFM_FAMILIES, build_vfm

__all__ = [
    'CLIPModel', 'ViTTower', 'ViTBlock', 'build_clip', 'load_state_dict_file', 'CheckpointError',
    'PretrainedWeightsUnavailable', 'SUPPORTED_ARCHITECTURES', 'prompt_templates', 'VFM', 'VFM_FAMILIES', 'build_vfm'
]
