from .clip_vit import DENSE_MODES, OVCLIPViT, interpolate_pos_embed, neighbourhood_bias

__all__ = ['OVCLIPViT', 'DENSE_MODES', 'interpolate_pos_embed', 'neighbourhood_bias']
