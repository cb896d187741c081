from .clip_vit import CLIP_ONLY_MODES, DENSE_MODES, PROXY_MODES, OVCLIPViT, interpolate_pos_embed, neighbourhood_bias

__all__ = ['OVCLIPViT', 'DENSE_MODES', 'PROXY_MODES', 'CLIP_ONLY_MODES', 'interpolate_pos_embed', 'neighbourhood_bias']
