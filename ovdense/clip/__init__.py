"""The only part of ovdense that imports open_clip and timm, split by concern: :mod:`.model` (:class:`CLIPModel`,
:func:`build_clip`), :mod:`.towers` (:class:`ViTTower` and its block views), :mod:`.formats` (checkpoint files, key
maps), :mod:`.hub` (pretrained weights and tokenizers, offline), :mod:`.templates` (prompt templates), :mod:`.vfm`
(vision foundation models).

Everything else sees :class:`CLIPModel` (tensors in, tensors out) and :class:`ViTTower`, a view of
the vision transformer made of plain ``torch.nn`` modules.
"""
from .formats import CheckpointError, load_pending_weights, load_state_dict_file
from .hub import PretrainedWeightsUnavailable
from .model import OPENAI_MEAN, OPENAI_STD, SUPPORTED_ARCHITECTURES, CLIPModel, build_clip
from .templates import prompt_templates
from .towers import ViTBlock, ViTTower
from .vfm import VFM, VFM_FAMILIES, build_vfm

__all__ = [
    'CLIPModel', 'ViTTower', 'ViTBlock', 'build_clip', 'load_state_dict_file', 'CheckpointError',
    'PretrainedWeightsUnavailable', 'SUPPORTED_ARCHITECTURES', 'prompt_templates', 'VFM', 'VFM_FAMILIES', 'build_vfm',
    'OPENAI_MEAN', 'OPENAI_STD', 'load_pending_weights'
]
