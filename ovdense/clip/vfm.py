"""Vision foundation models (VFMs) as proxies of patch affinity (ProxyCLIP): timm ViTs by name + local weights.

Only this package (:mod:`ovdense.clip`) touches timm. The rest of ovdense sees :class:`VFM`:
``patch_features(images) -> (B, C, h, w)``.

DINO ViTs (``vit_base_patch8_224.dino``, ``vit_base_patch16_224.dino``, ``vit_small_patch*_224.dino``)
and MAE (``vit_base_patch16_224.mae``) run through timm's modules with DINO's own position-embedding
interpolation (bicubic, ``scale_factor=(h + 0.1) / g``; timm's default resampling uses antialiasing and
moves the features by up to 0.04 at 336 px); DINOv2 (``vit_base_patch14_dinov2.lvd142m``, with registers
``vit_base_patch14_reg4_dinov2.lvd142m``) likewise with its register tokens; SAM's image encoder
(``samvit_base_patch16.sa1b``) through timm's ``forward_features`` (its neck's 256-channel map) at its
own input size (1024 px), as ProxyCLIP resizes for SAM. DINO / timm key names load unchanged (the DINO repository's checkpoints are timm's keys).
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .formats import CheckpointError, Renamed, load_into, load_state_dict_file, mark_loaded
from .hub import PretrainedWeightsUnavailable

# the input normalisation every supported VFM was trained with (ImageNet statistics of RGB in [0, 1])
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# family of each supported timm architecture prefix (the proxy recipe differs per family)
VFM_FAMILIES = {'vit_small_patch8_224': 'dino', 'vit_small_patch16_224': 'dino', 'vit_base_patch8_224': 'dino',
                'vit_base_patch16_224': 'dino', 'vit_small_patch14_dinov2': 'dinov2',
                'vit_base_patch14_dinov2': 'dinov2', 'vit_large_patch14_dinov2': 'dinov2',
                'vit_small_patch14_reg4_dinov2': 'dinov2', 'vit_base_patch14_reg4_dinov2': 'dinov2',
                'vit_large_patch14_reg4_dinov2': 'dinov2', 'samvit_base_patch16': 'sam',
                'samvit_large_patch16': 'sam'}


def _family(model_name: str) -> str:
    arch = model_name.split('.')[0]
    if arch not in VFM_FAMILIES:
        raise ValueError(f"unsupported VFM '{model_name}'; valid timm architectures: {sorted(VFM_FAMILIES)} "
                         "(with a pretrained tag, e.g. 'vit_base_patch8_224.dino')")
    return VFM_FAMILIES[arch]


POS_INTERP = ('dino', 'antialias')


def dino_pos_embed(pos: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1, *,
                   method: str = 'dino') -> torch.Tensor:
    """DINO's ``interpolate_pos_encoding``: (1, P + g*g, C) -> (1, P + h*w, C); unchanged for the native
    square grid, else bicubic, align_corners False: ``'dino'`` with ``scale_factor=((h + 0.1) / g, (w + 0.1) / g)``
    (DINO, DINOv2's ``interpolate_offset=0.1``), ``'antialias'`` to the size (h, w) with antialiasing (the DINOv2
    hub's models with registers: ``interpolate_offset=0, interpolate_antialias=True``; timm's own resampling)."""
    if method not in POS_INTERP:
        raise ValueError(f"unknown VFM position interpolation '{method}'; valid: {list(POS_INTERP)}")
    h, w = grid
    n = pos.shape[1] - num_prefix
    g = int(math.isqrt(n))
    if (h, w) == (g, g):
        return pos
    prefix, patch = pos[:, :num_prefix], pos[:, num_prefix:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    if method == 'antialias':
        patch = F.interpolate(patch, size=(h, w), mode='bicubic', antialias=True, align_corners=False)
    else:
        patch = F.interpolate(patch, scale_factor=(float((h + 0.1) / g), float((w + 0.1) / g)), mode='bicubic',
                              align_corners=False)  # float(): constants of a traced (exported) graph
    if patch.shape[-2:] != (h, w):
        raise ValueError(f'position embedding resized to {tuple(patch.shape[-2:])}, expected {grid}')
    return torch.cat([prefix, patch.permute(0, 2, 3, 1).reshape(1, h * w, -1)], 1)


class VFM(nn.Module):
    """A frozen vision foundation model giving patch features of an (ImageNet-normalised) image.

    Args:
        model: the timm model.
        family: ``'dino'`` (DINO and MAE ViTs), ``'dinov2'`` or ``'sam'``.
        name: timm model name (for messages).
        checkpoint: local weights loaded by :meth:`load_weights` (None: timm's pretrained weights from
            the Hugging Face cache, or :class:`PretrainedWeightsUnavailable`).
        pretrained: with no checkpoint, False keeps the random weights (tests).
        frozen: no gradients, always in eval mode (False: to train it, e.g. :class:`OVVFMPretrainer`).
        input_size: resize the input to this square size first (SAM: 1024), None: as given.
        pos_interp: position-embedding resampling, one of ``POS_INTERP`` (None: ``'antialias'`` for DINOv2 with
            registers, as its hub entries, else ``'dino'``).
    """

    def __init__(self, model: nn.Module, family: str, *, name: str, checkpoint: str | None = None,
                 pretrained: bool = True, input_size: int | None = None, frozen: bool = True,
                 pos_interp: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.family = family
        self.name = name
        self.checkpoint = checkpoint
        self.pretrained = pretrained
        self.input_size = input_size
        self.frozen = frozen
        if pos_interp is None:
            pos_interp = 'antialias' if '_reg' in name.split('.')[0] else 'dino'
        if pos_interp not in POS_INTERP:
            raise ValueError(f"unknown VFM position interpolation '{pos_interp}'; valid: {list(POS_INTERP)}")
        self.pos_interp = pos_interp
        if frozen:
            self.requires_grad_(False)
        self._weights_loaded = False
        self._register_load_state_dict_pre_hook(mark_loaded, with_module=True)

    @property
    def weights_pending(self) -> bool:
        """Weights are named (checkpoint, or timm's pretrained ones) and have not arrived yet (as
        :attr:`CLIPModel.weights_pending`)."""
        return (self.checkpoint is not None or bool(self.pretrained)) and not self._weights_loaded

    @property
    def patch_size(self) -> int:
        ps = self.model.patch_embed.patch_size
        return ps[0] if isinstance(ps, (tuple, list)) else ps

    @property
    def embed_dim(self) -> int:
        return self.model.neck[-2].out_channels if self.family == 'sam' else self.model.num_features

    def load_weights(self) -> None:
        """Load ``checkpoint`` strictly (timm / DINO key names); a wrong file names its missing and
        unexpected keys.

        Raises:
            CheckpointError: the file is missing, unreadable or does not fit.
            PretrainedWeightsUnavailable: no checkpoint and timm's weights are not cached locally.
        """
        if self.checkpoint is None:
            if not self.pretrained:
                return  # random weights (tests)
            self.checkpoint = _cached_pretrained(self.model, self.name)
        state = load_state_dict_file(self.checkpoint, lazy=True)
        for prefix in ('module.', 'model.', 'backbone.'):
            if all(k.startswith(prefix) for k in state):
                state = Renamed(state, {k[len(prefix):]: k for k in state})
        if 'mask_token' in state and 'mask_token' not in self.model.state_dict():  # the DINOv2 repository's names
            from timm.models.vision_transformer import checkpoint_filter_fn
            state = checkpoint_filter_fn(dict(state), self.model)
        load_into(self.model, Renamed(state, {k: k for k in state}, to_float=True), self.checkpoint,
                  what=f"VFM checkpoint {self.checkpoint} does not fit '{self.name}'")
        self._weights_loaded = True

    def train(self, mode: bool = True) -> 'VFM':
        return super().train(mode and not self.frozen)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) final-norm patch tokens of (B, 3, H, W) ImageNet-normalised images
        (h = H // patch, w = W // patch; SAM: its neck's map at ``input_size``)."""
        if self.input_size is not None:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode='bilinear', align_corners=False)
        if self.family == 'sam':
            return self.model.forward_features(x)
        tokens, (h, w) = self.embed(x)
        for blk in self.model.blocks:
            tokens = blk(tokens)
        tokens = self.model.norm(tokens)[:, -h * w:]
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The tokens entering the first block (ViT families): (B, P + h*w, C) — CLS, the registers (if any) and the
        patches with their position embeddings — and the grid (h, w)."""
        m = self.model
        B = x.shape[0]
        tokens = m.patch_embed.proj(x)
        h, w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        prefix = [t.expand(B, -1, -1) for t in (m.cls_token, getattr(m, 'reg_token', None)) if t is not None]
        if m.no_embed_class:  # position embedding on the patches only (timm's DINOv2 with registers)
            tokens = torch.cat([*prefix, tokens + dino_pos_embed(m.pos_embed, (h, w), num_prefix=0,
                                                                 method=self.pos_interp)], 1)
        else:
            tokens = torch.cat([*prefix, tokens], 1) + dino_pos_embed(m.pos_embed, (h, w), num_prefix=len(prefix),
                                                                      method=self.pos_interp)
        return m.norm_pre(tokens), (h, w)


def build_vfm(model_name: str | None = None, *, checkpoint: str | os.PathLike | None = None,
              pretrained: bool = True, model_kwargs: dict[str, Any] | None = None,
              config_file: str | os.PathLike | None = None, frozen: bool = True,
              pos_interp: str | None = None) -> VFM:
    """A VFM by timm name (e.g. ``'vit_base_patch8_224.dino'``) with local weights.

    Args:
        model_name: timm model name with its pretrained tag.
        checkpoint: local weights (``.safetensors`` or a weights-only ``.pth``), loaded by
            :meth:`VFM.load_weights` (nothing is read before). None: timm's pretrained weights from the
            Hugging Face cache if there (never downloaded), else :class:`PretrainedWeightsUnavailable`.
        pretrained: with no checkpoint, False keeps random weights (tests).
        model_kwargs: architecture overrides for ``timm.create_model`` (tiny test models).
        config_file: a JSON with ``model_name`` and ``model_kwargs`` (what :class:`OVVFMPretrainer`
            exports next to its weights) instead of the two arguments.
        frozen, pos_interp: see :class:`VFM`.

    Raises:
        ValueError: an unsupported architecture (the message lists the valid ones).
    """
    import timm
    if config_file is not None:
        import json
        with open(config_file, encoding='utf-8') as f:
            spec = json.load(f)
        model_name, model_kwargs = spec['model_name'], spec.get('model_kwargs', {})
    if model_name is None:
        raise ValueError('build_vfm needs model_name (a timm name) or config_file')
    family = _family(model_name)
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault('num_classes', 0)
    if family != 'sam':
        kwargs.setdefault('dynamic_img_size', True)
    model = timm.create_model(model_name, pretrained=False, **kwargs)
    return VFM(model, family, name=model_name, checkpoint=None if checkpoint is None else os.fspath(checkpoint),
               pretrained=pretrained, input_size=model.patch_embed.img_size[0] if family == 'sam' else None,
               frozen=frozen, pos_interp=pos_interp)


def _cached_pretrained(model: nn.Module, model_name: str) -> str:
    """Local file of timm's pretrained weights in the Hugging Face cache (never downloaded here)."""
    hub = (getattr(model, 'pretrained_cfg', None) or {}).get('hf_hub_id')
    if hub:
        from huggingface_hub import try_to_load_from_cache
        for fn in ('model.safetensors', 'pytorch_model.bin'):
            found = try_to_load_from_cache(hub, fn)
            if isinstance(found, str):
                return found
    raise PretrainedWeightsUnavailable(
        f"pretrained weights of VFM '{model_name}' are not cached locally (huggingface.co/{hub}) and are not "
        f"downloaded here. Download them where you have network (timm.create_model('{model_name}', "
        f"pretrained=True) caches them) and pass the file with checkpoint=PATH (tools: --cfg-options "
        f"model.backbone.proxy.checkpoint=PATH).")
