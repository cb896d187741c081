"""Test support (users need not import it): tiny models and inputs for fast tests, the golden tiny CLIP of
``../shared/golden``, the golden-parity runner (:mod:`.parity`) and the synthetic-world evaluation
(:mod:`.synthetic_eval`)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..clip import CLIPModel, build_clip

# A 2-layer ViT (patch 16, width 64) and a 1-layer text tower: builds in milliseconds.
TINY_CLIP_CFG = dict(
    embed_dim=32,
    quick_gelu=True,
    vision_cfg=dict(image_size=64, layers=2, width=64, head_width=32, patch_size=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=1, layers=1),
)

# an EVA-CLIP-format config (as CLIPSelf's model_configs: a timm EVA-02 tower with RoPE, sub-LN, SwiGLU), tiny:
# width 64, 2 blocks of 2 heads, 64 px, and the same text tower
TINY_EVA_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=64, layers=2, width=64, head_width=32, patch_size=16, mlp_ratio=2.6667,
                    eva_model_name='eva-clip-b-16-X', xattn=False, fusedLN=False, rope=True,
                    pt_hw_seq_len=16, intp_freq=True, naiveswiglu=True, subln=True),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=1, layers=1),
)

TINY_SIGLIP_TRUNK = 'ovdense_tiny_siglip_p16'  # timm VisionTransformer as vit_base_patch16_siglip_224, width 64

# open_clip's SigLIP layout (ViT-B-16-SigLIP.json: timm trunk with a MAP head as projection, bidirectional text
# tower pooled at the last token, logit bias -10), tiny, with open_clip's BPE tokenizer instead of the HF one
TINY_SIGLIP_CFG = dict(
    embed_dim=64,
    init_logit_bias=-10,
    custom_text=True,
    vision_cfg=dict(image_size=64, timm_model_name=TINY_SIGLIP_TRUNK, timm_model_pretrained=False, timm_pool='map',
                    timm_proj='none'),
    text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=1, layers=1, no_causal_mask=True,
                  proj_bias=True, pool_type='last', norm_kwargs=dict(eps=1e-6)),
    preprocess_cfg=dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),  # SigLIP's input statistics, as its tags give
)


def register_tiny_siglip() -> None:
    """Register :data:`TINY_SIGLIP_TRUNK` with timm (2 blocks of 2 heads, 64 px, no CLS token, MAP head)."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import _create_vision_transformer
    if TINY_SIGLIP_TRUNK in timm.list_models(TINY_SIGLIP_TRUNK):
        return

    def entry(pretrained: bool = False, **kwargs):
        args = dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, class_token=False,
                    global_pool='map')
        return _create_vision_transformer('vit_base_patch16_siglip_224', pretrained=False, **dict(args, **kwargs))

    entry.__name__ = TINY_SIGLIP_TRUNK
    register_model(entry)


def tiny_siglip(seed: int = 0) -> CLIPModel:
    """A random tiny SigLIP (deterministic by seed)."""
    register_tiny_siglip()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_clip(model_cfg=TINY_SIGLIP_CFG)


def tiny_clip(seed: int = 0, *, layers: int = 2) -> CLIPModel:
    """A random tiny CLIP (deterministic by seed) with ``layers`` vision blocks."""
    cfg = dict(TINY_CLIP_CFG, vision_cfg=dict(TINY_CLIP_CFG['vision_cfg'], layers=layers))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_clip(model_cfg=cfg)


def tiny_vfm(seed: int = 0, *, model_name: str = 'vit_base_patch8_224.dino'):
    """A random tiny vision foundation model (timm architecture of ``model_name``, 1 block of width 32)."""
    from ..clip import build_vfm
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_vfm(model_name, pretrained=False, model_kwargs=dict(embed_dim=32, depth=1, num_heads=2)).eval()


def shared_dir() -> Path:
    """``../shared`` next to the repository (CI has it; a user's clone may not)."""
    env = os.environ.get('OVDENSE_SHARED')
    return Path(env) if env else Path(__file__).resolve().parents[3] / 'shared'


def golden_dir() -> Path:
    return shared_dir() / 'golden'


def golden_clip_cfg(seed: int = 0) -> dict:
    """``build_clip`` kwargs for the golden tiny CLIP (config JSON + safetensors)."""
    g = golden_dir()
    return dict(config_file=str(g / 'tiny_clip_config.json'), checkpoint=str(g / f'tiny_clip_seed{seed}.safetensors'))


def golden_clip(seed: int = 0) -> CLIPModel:
    """The golden tiny CLIP with its weights loaded."""
    clip = build_clip(**golden_clip_cfg(seed))
    clip.load_weights()
    return clip


def random_images(batch: int = 2, height: int = 64, width: int = 96, seed: int = 0) -> torch.Tensor:
    """(B, 3, H, W) normalised-looking random images."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=g)


# the knobs a registered method needs on the tiny CLIPs (by its short name); methods not listed build with none
def tiny_method_config(name: str, layers: int) -> dict:
    """The config of the registered dense method ``name`` for a tiny CLIP of ``layers`` blocks (layer indices
    scaled to it; the reference's own at 12 blocks; a tiny random VFM as ProxyCLIP's proxy)."""
    from ..models.methods import registered_methods
    n = layers - 1  # block outputs before the last block
    knobs = dict(
        proxyclip=lambda: dict(proxy=tiny_vfm()),
        scclip=lambda: dict(pre_adjust_idx=n - 1, post_adjust_idx=0, multi_start_idx=0, multi_end_idx=n),
        resclip=lambda: dict(rcs_blocks=tuple(range(max(n - 2, 0), n)), pamr=dict(num_iter=2, dilations=(1, 2))),
    ).get(name)
    cfg = dict(type=registered_methods()[name].__name__)
    if knobs and not (layers == 12 and name in ('scclip', 'resclip')):
        cfg.update(knobs())
    return cfg


def tiny_queries(clip: CLIPModel, num: int = 5, seed: int = 0) -> torch.Tensor:
    """(num, D) normalised random query embeddings for methods that read the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(num, clip.embed_dim, generator=g), dim=-1)


def tiny_method(name: str, *, layers: int | None = None, seed: int = 0,
                num_queries: int = 5) -> tuple[CLIPModel, dict, torch.Tensor | None]:
    """A tiny CLIP deep enough for the registered dense method ``name`` (4 blocks for SC-CLIP / ResCLIP, else 2;
    ``layers`` to choose), the method's config for it (:func:`tiny_method_config`), and (Q, D) normalised random
    query embeddings when the method reads the vocabulary (else None)."""
    from ..models.methods import registered_methods
    layers = layers or (4 if name in ('scclip', 'resclip') else 2)
    clip = tiny_clip(seed, layers=layers)
    text = tiny_queries(clip, num_queries, seed) if registered_methods()[name].needs_text else None
    return clip, tiny_method_config(name, layers), text
