"""Dense CLIP backbones. ``OVCLIPViT`` gives per-patch features in the text space; ``OVFViTBackbone`` and
``OVDenseCLIPViT`` turn it into the 4-level pyramid a stock mmseg / mmdet neck takes."""
from .clip_vit import CLIP_ONLY_MODES, DENSE_MODES, PROXY_MODES, OVCLIPViT, interpolate_pos_embed, neighbourhood_bias
from .denseclip_vit import OVDenseCLIPViT
from .fvit_backbone import OVFViTBackbone

__all__ = ['OVCLIPViT', 'OVDenseCLIPViT', 'OVFViTBackbone', 'DENSE_MODES', 'PROXY_MODES', 'CLIP_ONLY_MODES',
           'interpolate_pos_embed', 'neighbourhood_bias']
