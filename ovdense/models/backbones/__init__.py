"""Dense CLIP backbones. ``OVCLIPViT`` gives per-patch features in the text space (by a dense method of
:mod:`ovdense.models.methods`); ``OVFViTBackbone`` and ``OVDenseCLIPViT`` turn it into the 4-level pyramid a stock
mmseg / mmdet neck takes."""
from .clip_vit import OVCLIPViT, interpolate_pos_embed, tokens_to_map
from .denseclip_vit import OVDenseCLIPViT
from .fvit_backbone import OVFViTBackbone

__all__ = ['OVCLIPViT', 'OVDenseCLIPViT', 'OVFViTBackbone', 'interpolate_pos_embed', 'tokens_to_map']
