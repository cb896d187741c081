"""open_clip models as :class:`CLIPModel` (text and image embeddings, the tower view, locking, saving) and
:func:`build_clip` (names + pretrained tags, local checkpoints, config JSONs).

Supported architectures for the dense methods: open_clip's own ``VisionTransformer`` towers (OpenAI CLIP and the
OpenCLIP / LAION / DataComp / MetaCLIP / DFN ``ViT-*`` models), timm EVA-02 towers (``EVA02-*``, EVA-CLIP and
CLIPSelf checkpoints) and timm SigLIP / SigLIP2 towers (``ViT-*-SigLIP*``: no CLS token, a MAP attention-pool
head). Other towers (``convnext*``, ModifiedResNet ``RN50`` ...) can be loaded and used for text/image
embeddings, but :meth:`CLIPModel.vit_tower` rejects them with a clear error.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .formats import (WEIGHT_FORMATS, CheckpointError, _cfg_from_openai_state_dict, _normalize_keys,
                      eva_clip_model_cfg, eva_clip_to_open_clip, is_eva_clip_config, is_eva_clip_state,
                      load_into, load_state_dict_file, mark_loaded, open_clip_to_eva_clip)
from .hub import LazyTokenizer, _open_clip, resolve_pretrained
from .towers import EVABlock, MAPHead, TimmBlock, ViTBlock, ViTTower, _timm_stem

SUPPORTED_ARCHITECTURES = (
    "open_clip VisionTransformer towers: OpenAI CLIP and OpenCLIP/LAION/DataComp/MetaCLIP/DFN 'ViT-*' "
    "models (any patch size and width), timm EVA-02 towers ('EVA02-*', EVA-CLIP / CLIPSelf checkpoints) and "
    "timm SigLIP / SigLIP2 towers ('ViT-*-SigLIP*', MAP head). Not supported for dense features: other timm "
    "towers, ConvNeXt, ModifiedResNet (RN*).")

# OpenAI CLIP's input statistics (RGB in [0, 1]), open_clip's OPENAI_DATASET_MEAN / _STD
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _is_setting(value: object) -> bool:
    """A plain scalar (or tuple of them) held by a module: a setting that changes what it computes."""
    if isinstance(value, (tuple, list)):
        return all(_is_setting(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


class CLIPModel(nn.Module):
    """A CLIP model from open_clip with the few entry points ovdense uses.

    Build it with :func:`build_clip`. Weights are loaded by :meth:`load_weights` (not at
    construction, so building a model never touches the disk or the network).

    Args:
        model: the open_clip ``CLIP`` module.
        tokenizer: open_clip tokenizer, ``list[str] -> LongTensor (N, context_length)``.
        name: model name (open_clip name or config stem), for messages and fingerprints.
        pretrained: open_clip pretrained tag, or None.
        checkpoint: path of a local weight file, or None.
    """

    def __init__(self, model: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor], *,
                 name: str, pretrained: str | None = None, checkpoint: str | None = None,
                 model_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.model_cfg = dict(model_cfg) if model_cfg is not None else None
        self.tokenizer = tokenizer
        self.name = name
        self.pretrained = pretrained
        self.checkpoint = checkpoint
        self._text_fingerprint: tuple[tuple, str] | None = None  # (text_state(), hash)
        self.weights_format = 'open_clip'  # of the file loaded: 'open_clip' or 'eva_clip' (EVA-CLIP / CLIPSelf)
        self._weights_loaded = False
        self._register_load_state_dict_pre_hook(mark_loaded, with_module=True)

    @property
    def weights_pending(self) -> bool:
        """Weights are named (checkpoint or pretrained tag) but have not arrived yet: neither :meth:`load_weights`
        nor a ``load_state_dict`` holding this model's tensors (a trained checkpoint) ran. A model built by an
        OpenMMLab inferencer (which never calls ``init_weights``) is in this state until its first forward
        (:func:`ovdense.models.utils.load_pending_weights`)."""
        return (self.checkpoint is not None or self.pretrained is not None) and not self._weights_loaded

    # ------------------------------------------------------------------ weights
    def load_weights(self, *, cache_dir: str | None = None) -> None:
        """Load the weights named at build time (local checkpoint, else pretrained tag).

        Raises:
            CheckpointError: the checkpoint file is missing, unreadable or does not fit.
            PretrainedWeightsUnavailable: the tag's weights are not cached and cannot be downloaded.
        """
        if self.checkpoint is not None:
            path = self.checkpoint
        elif self.pretrained is not None:
            path = resolve_pretrained(self.name, self.pretrained, cache_dir=cache_dir)
        else:
            return
        self.load_state_dict_from(path)

    def load_state_dict_from(self, path: str | os.PathLike) -> None:
        """Load an open_clip / OpenAI-format state dict file into the model (strict)."""
        state = _normalize_keys(load_state_dict_file(path, lazy=True), self.model.state_dict().keys())
        self.weights_format = 'open_clip'
        if is_eva_clip_state(state):  # EVA-CLIP / CLIPSelf files: onto the timm trunk by name, strictly
            state = eva_clip_to_open_clip(state)
            self.weights_format = 'eva_clip'
        load_into(self.model, state, path, what=f"checkpoint {path} does not fit model '{self.name}'")
        self._weights_loaded = True

    def save(self, out_dir: str | os.PathLike, name: str, *,
             state_dict: Mapping[str, torch.Tensor] | None = None,
             dtype: torch.dtype | None = None, weights_format: str | None = None) -> tuple[Path, Path]:
        """Write ``name.json`` (the model config as given: open_clip's, or EVA-CLIP's) and ``name.safetensors``
        (weights, or the given ``state_dict`` of the same keys) atomically; ``build_clip(config_file=...,
        checkpoint=...)`` loads them. ``dtype`` (e.g. ``torch.float16`` for a small shipped file) casts
        floating-point weights. ``weights_format``: the key names, ``'open_clip'`` or ``'eva_clip'`` (EVA-CLIP /
        CLIPSelf; EVA-02 towers only); default: the format of the file that was loaded.
        """
        from safetensors.torch import save_file
        cfg = self.model_cfg if self.model_cfg is not None else _open_clip().get_model_config(self.name)
        if cfg is None:
            raise ValueError(f"no open_clip model config known for '{self.name}'")
        state = self.model.state_dict() if state_dict is None else state_dict
        fmt = weights_format or self.weights_format
        if fmt not in WEIGHT_FORMATS:
            raise ValueError(f"unknown weights_format '{fmt}'; valid: {list(WEIGHT_FORMATS)}")
        if fmt == 'eva_clip':
            if not any(k.startswith('visual.trunk.blocks.') for k in state):
                raise ValueError(f"weights_format='eva_clip' needs an EVA-02 tower; '{self.name}' has none")
            state = open_clip_to_eva_clip(state)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cfg_path, weights = out / f'{name}.json', out / f'{name}.safetensors'
        def cast(v: torch.Tensor) -> torch.Tensor:
            return v.to(dtype) if dtype is not None and v.is_floating_point() else v
        save_file({k: cast(v.detach().cpu()).contiguous() for k, v in state.items()}, str(weights) + '.tmp')
        os.replace(str(weights) + '.tmp', weights)
        cfg_path.with_suffix('.json.tmp').write_text(json.dumps(cfg, indent=2))
        os.replace(cfg_path.with_suffix('.json.tmp'), cfg_path)
        return cfg_path, weights

    # --------------------------------------------------------------------- text
    @property
    def text_tower(self) -> nn.Module:
        """The module with the text transformer's parts (``token_embedding``, ``transformer``, ``ln_final``,
        ``text_projection``): the CLIP itself, or its ``text`` (open_clip's ``CustomTextCLIP``: EVA, SigLIP)."""
        return getattr(self.model, 'text', self.model)

    @property
    def embed_dim(self) -> int:
        proj = self.text_tower.text_projection
        if proj is None:  # no text projection (SigLIP So400m i18n): the text width is the joint space's
            return int(self.text_tower.ln_final.normalized_shape[0])
        return int(proj.shape[1]) if isinstance(proj, torch.Tensor) else int(proj.out_features)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> torch.Tensor | None:
        """SigLIP's learnt bias of the sigmoid match ``sigmoid(exp(logit_scale) * cos + logit_bias)``, or None."""
        return getattr(self.model, 'logit_bias', None)

    def tokenize(self, texts: Sequence[str], *, context_length: int | None = None) -> torch.Tensor:
        """Token ids (N, context_length) on the model's device (the model's context length by default)."""
        ids = self.tokenizer(list(texts)) if context_length is None else self.tokenizer(list(texts), context_length)
        return ids.to(self.model.logit_scale.device)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, width) token embeddings of token ids (N, L) (no position embedding)."""
        return self.text_tower.token_embedding(tokens)

    def encode_text_embeddings(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Text embeddings (N, D) from token embeddings (N, L, width), e.g. with learnt context tokens
        inserted (CoOp / DenseCLIP): the first L position embeddings, the causal text transformer,
        ``ln_final``, the token at ``eot_index`` (N,), the projection."""
        m = self.text_tower
        if not self.text_is_causal_eot_pooled():
            raise ValueError(f"model '{self.name}': learnt prompt contexts need a causal text tower pooled at the "
                             f"end-of-text token (CLIP's); this one pools '{self._text_pool_type()}'"
                             f"{' without a causal mask' if getattr(m, 'attn_mask', None) is None else ''}")
        L = x.shape[1]
        if L > m.positional_embedding.shape[0]:
            raise ValueError(f'{L} tokens exceed the text context length {m.positional_embedding.shape[0]}')
        return self._causal_text(x, eot_index)

    def _causal_text(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_text_embeddings` on a tower and a length already checked."""
        m = self.text_tower
        L = x.shape[1]
        x = x + m.positional_embedding[:L].to(x.dtype)
        mask = torch.full((L, L), float('-inf'), device=x.device, dtype=x.dtype).triu_(1)
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = m.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def _text_pool_type(self) -> str:
        m = self.text_tower  # open_clip's TextTransformer says pool_type, its CLIP text_pool_type
        return getattr(m, 'pool_type', None) or getattr(m, 'text_pool_type', 'argmax')

    def text_is_causal_eot_pooled(self) -> bool:
        """Whether the text tower is CLIP's: a causal transformer over position-embedded tokens, pooled at the
        end-of-text token (the largest id), no class token. Its output then depends only on the tokens up to
        the end of text."""
        m = self.text_tower
        return (self._text_pool_type() == 'argmax' and getattr(m, 'attn_mask', None) is not None
                and getattr(m, 'cls_emb', None) is None
                and all(hasattr(m, a) for a in ('token_embedding', 'positional_embedding', 'transformer', 'ln_final')))

    def encode_text(self, texts: Sequence[str] | torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
        """Text embeddings (N, D) of strings or token ids.

        A causal tower pooled at the end-of-text token (:meth:`text_is_causal_eot_pooled`: OpenAI's, OpenCLIP's,
        EVA's) runs on the tokens up to the batch's longest text only: the padding after every end-of-text token
        cannot reach it through the causal mask, so the result is the same as on all ``context_length`` tokens
        (within float rounding) at a fraction of the cost (a class name in a template is ~10 of 77 tokens).
        """
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        if not self.text_is_causal_eot_pooled() or tokens.shape[0] == 0:
            return self.model.encode_text(tokens, normalize=normalize)
        eot = tokens.argmax(dim=-1)
        x = self._causal_text(self.embed_tokens(tokens[:, :int(eot.max()) + 1]), eot)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_image(self, images: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
        """Image embeddings (B, D) of normalised images (B, 3, H, W) at the native size."""
        return self.model.encode_image(images, normalize=normalize)

    def _text_tensors(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, t) for n, t in [*self.model.named_parameters(), *self.model.named_buffers()]
                if not n.startswith('visual.')]

    def text_state(self) -> tuple:
        """A cheap key that changes whenever the text tower's weights may have: the identity, storage and
        version counter of every text tensor. ``load_state_dict`` (and so mmengine's ``load_checkpoint``)
        copies in place, which bumps the version counters; replacing a parameter changes its identity."""
        return (id(self.tokenizer), *((n, id(t), t.data_ptr(), t._version) for n, t in self._text_tensors()))

    def text_architecture(self) -> str:
        """Everything about the text tower that changes its output besides the weights: each module's class
        (``QuickGELU`` vs ``GELU``, ``LayerNorm`` variants) and its scalar settings (heads, eps, pooling, causal
        mask, context length), in module order. Two towers with equal weights and equal text here compute the
        same embeddings."""
        parts = []
        for name, module in self.model.named_modules():
            if name == 'visual' or name.startswith('visual.'):
                continue
            settings = {k: v for k, v in vars(module).items()
                        if not k.startswith('_') and k != 'training' and _is_setting(v)}
            parts.append(f'{name}:{type(module).__module__}.{type(module).__qualname__}:{sorted(settings.items())!r}')
        return '\n'.join(parts)

    def text_fingerprint(self) -> str:
        """Hash of the text tower's weights, architecture (:meth:`text_architecture`: activation, heads, norms,
        pooling) and tokenizer: the key of cached text embeddings. Recomputed whenever :meth:`text_state`
        changed (any load or in-place edit), so cached embeddings never go stale."""
        state = self.text_state()
        if self._text_fingerprint is None or self._text_fingerprint[0] != state:
            h = hashlib.blake2b(digest_size=16)
            h.update(getattr(self.tokenizer, 'source', type(self.tokenizer).__name__).encode())
            h.update(self.text_architecture().encode())
            for name, tensor in sorted(self._text_tensors(), key=lambda nt: nt[0]):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy
            self._text_fingerprint = (state, h.hexdigest())
        return self._text_fingerprint[1]

    def lock_text(self) -> None:
        """Freeze the text tower (open_clip's ``lock_text_tower``) and the logit scale (and bias) it is
        compared with."""
        self.model.lock_text_tower()
        for name in ('logit_scale', 'logit_bias'):
            p = getattr(self.model, name, None)
            if isinstance(p, nn.Parameter):
                p.requires_grad_(False)

    def finetune_attention(self, parts: str = 'qv') -> list[str]:
        """Freeze everything but the attention input projections ``parts`` (of ``'q'``, ``'k'``, ``'v'``) of every
        block of both towers (CAT-Seg's ``CLIP_FINETUNE attention``: q and v weights; biases stay frozen). A packed
        projection (open_clip's ``in_proj_weight``) trains with the other rows' gradient zeroed by a hook (give it no
        weight decay, or those rows decay). Returns the names of the parameters left trainable."""
        if not parts or set(parts) - set('qkv'):
            raise ValueError(f"parts must be letters of 'qkv', got {parts!r}")
        self.model.requires_grad_(False)
        names = []
        for name, p in self.model.named_parameters():
            if name.endswith('attn.in_proj_weight'):
                rows = p.shape[0] // 3
                mask = torch.zeros(p.shape[0], 1, dtype=p.dtype, device=p.device)
                for i, c in enumerate('qkv'):
                    if c in parts:
                        mask[i * rows:(i + 1) * rows] = 1
                p.requires_grad_(True)
                if set(parts) != set('qkv'):
                    p.register_hook(lambda g, _m=mask: g * _m.to(g))
                names.append(name)
            elif any(name.endswith(f'attn.{c}_proj.weight') for c in parts):
                p.requires_grad_(True)
                names.append(name)
        return names

    def lock_vision(self, unlocked_blocks: int = 0, *, head: bool = True) -> None:
        """Freeze the vision tower but its last ``unlocked_blocks`` blocks (then with ``ln_post`` and the
        projection, unless ``head=False``: EVA-CLIP's own ``lock``, which CLIPSelf's and DeCLIP's EVA recipes use,
        unlocks the blocks only). open_clip towers: open_clip's ``lock_image_tower``, whose groups are the stem, each
        block, the last block with ``ln_post``, and the projection; EVA-02 (timm) towers: the same parts,
        unlocked on the tower view (timm's own groups differ); SigLIP's MAP head is the projection."""
        tower = self.vit_tower()
        if isinstance(self.model.visual, _open_clip().timm_model.TimmModel):
            self.model.visual.requires_grad_(False)
            if unlocked_blocks:
                for blk in tower.blocks[len(tower.blocks) - unlocked_blocks:]:
                    for m in vars(blk).values():
                        if isinstance(m, nn.Module):
                            m.requires_grad_(True)
        else:
            self.model.lock_image_tower(unlocked_groups=unlocked_blocks + 1 if unlocked_blocks else 0)
        if unlocked_blocks:
            tower.ln_post.requires_grad_(head)
            if tower.head is None:
                tower.proj.requires_grad_(head)
            else:
                (tower.head.attn_pool if isinstance(tower.head, MAPHead) else tower.head).requires_grad_(head)

    def text_parameters(self) -> Iterable[nn.Parameter]:
        """Parameters of the text tower (everything outside ``visual``)."""
        return (p for n, p in self.model.named_parameters() if not n.startswith('visual.'))

    # ------------------------------------------------------------------- vision
    @property
    def visual(self) -> nn.Module:
        return self.model.visual

    @property
    def image_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per RGB channel of [0, 1] images that the vision tower was trained on: open_clip's
        preprocess config of the model (SigLIP: 0.5 / 0.5), else OpenAI's statistics."""
        cfg = getattr(self.visual, 'preprocess_cfg', None) or {}
        mean = cfg.get('mean') or getattr(self.visual, 'image_mean', None) or OPENAI_MEAN
        std = cfg.get('std') or getattr(self.visual, 'image_std', None) or OPENAI_STD
        return tuple(float(m) for m in mean), tuple(float(v) for v in std)

    def vit_tower(self) -> ViTTower:
        """The vision tower as plain modules.

        Raises:
            ValueError: the tower is none of SUPPORTED_ARCHITECTURES.
        """
        v = self.model.visual
        oc = _open_clip()
        if isinstance(v, oc.timm_model.TimmModel):
            from timm.models.eva import Eva
            return self._eva_tower(v) if isinstance(v.trunk, Eva) else self._siglip_tower(v)
        if not isinstance(v, oc.transformer.VisionTransformer):
            raise ValueError(f"model '{self.name}' has a {type(v).__name__} vision tower; dense modes "
                             f"need {SUPPORTED_ARCHITECTURES}")
        if getattr(v, 'attn_pool', None) is not None or v.pool_type != 'tok':
            raise ValueError(f"model '{self.name}' pools with attn_pool/{v.pool_type}; dense modes need "
                             "CLS-token pooling (pool_type='tok')")
        blocks = []
        for r in v.transformer.resblocks:
            mlp = r.mlp
            if not isinstance(r.attn, nn.MultiheadAttention) or not hasattr(mlp, 'c_fc'):
                raise ValueError(f"model '{self.name}' uses custom attention blocks; {SUPPORTED_ARCHITECTURES}")
            if getattr(r, 'ln_attn', nn.Identity()).__class__ is not nn.Identity:
                raise ValueError(f"model '{self.name}' uses scaled-cosine/attn-norm blocks (not supported)")
            blocks.append(ViTBlock(ln_1=r.ln_1, attn=r.attn, ls_1=r.ls_1, ln_2=r.ln_2, fc1=mlp.c_fc,
                                   act=mlp.gelu, fc2=mlp.c_proj, ls_2=r.ls_2))
        patch = v.patch_size[0] if isinstance(v.patch_size, tuple) else int(v.patch_size)
        image_size = v.image_size[0] if isinstance(v.image_size, tuple) else int(v.image_size)
        return ViTTower(conv1=v.conv1, class_embedding=v.class_embedding,
                        positional_embedding=v.positional_embedding, ln_pre=v.ln_pre,
                        blocks=tuple(blocks), ln_post=v.ln_post, proj=v.proj, patch_size=patch,
                        num_heads=blocks[0].attn.num_heads, image_size=image_size)

    def _siglip_tower(self, v: nn.Module) -> ViTTower:
        """The view of a timm SigLIP / SigLIP2 trunk (a ``VisionTransformer`` with no CLS token and a MAP head)."""
        from timm.layers import AttentionPoolLatent, Mlp
        from timm.models.vision_transformer import Attention, Block, VisionTransformer
        t = v.trunk
        if (not isinstance(t, VisionTransformer) or t.global_pool != 'map' or t.num_prefix_tokens
                or not isinstance(t.attn_pool, AttentionPoolLatent) or t.attn_pool.pos_embed is not None
                or t.attn_pool.latent_len != 1 or t.attn_pool.mlp is None or len(v.head)
                or not isinstance(t.fc_norm, nn.Identity) or not isinstance(t.patch_embed.norm, nn.Identity)):
            raise ValueError(f"model '{self.name}' has a timm {type(t).__name__} tower; dense modes support timm "
                             f"SigLIP trunks (no prefix tokens, one-query MAP head as the projection) and EVA-02; "
                             f"{SUPPORTED_ARCHITECTURES}")
        blocks = []
        for b in t.blocks:
            a, m = b.attn, b.mlp
            if (type(b) is not Block or type(a) is not Attention or type(m) is not Mlp
                    or not all(isinstance(n, nn.Identity) for n in (a.q_norm, a.k_norm, a.norm))):
                raise ValueError(f"model '{self.name}': timm blocks with qk-norm, scaled-cosine attention or a "
                                 'gated MLP are not supported')
            blocks.append(TimmBlock(ln_1=b.norm1, qkv_proj=a.qkv, proj=a.proj, ls_1=b.ls1, ln_2=b.norm2, fc1=m.fc1,
                                    act=m.act, mlp_norm=m.norm, fc2=m.fc2, ls_2=b.ls2, num_heads=a.num_heads))
        return ViTTower(class_embedding=None, blocks=tuple(blocks), head=MAPHead(t.attn_pool), family='siglip',
                        **_timm_stem(t))

    def _eva_tower(self, v: nn.Module) -> ViTTower:
        """The view of a timm EVA-02 trunk (open_clip's ``EVA02-*`` models)."""
        from timm.models.eva import Eva
        t = v.trunk
        if not isinstance(t, Eva) or t.rope is None or t.cls_token is None or len(v.head) or t.global_pool != 'token':
            raise ValueError(f"model '{self.name}' has a timm {type(t).__name__} tower; dense modes support timm "
                             f"EVA-02 trunks with RoPE, a CLS token and the trunk head as projection; "
                             f"{SUPPORTED_ARCHITECTURES}")
        blocks = []
        for b in t.blocks:
            a, m = b.attn, b.mlp
            if a.qkv is not None or b.gamma_1 is not None or not hasattr(m, 'fc1_g'):
                raise ValueError(f"model '{self.name}': EVA blocks with fused qkv, layer scale or a plain MLP are "
                                 'not supported')
            blocks.append(EVABlock(ln_1=b.norm1, q_proj=a.q_proj, k_proj=a.k_proj, v_proj=a.v_proj,
                                   attn_norm=a.norm, proj=a.proj, ln_2=b.norm2, fc1_g=m.fc1_g, fc1_x=m.fc1_x,
                                   mlp_norm=m.norm, fc2=m.fc2, num_heads=a.num_heads))
        ref = t.rope.ref_feat_shape if getattr(t.rope, 'ref_feat_shape', None) is not None else t.patch_embed.grid_size
        if ref[0] != ref[1]:
            raise ValueError(f'non-square RoPE reference grid {tuple(ref)}')
        return ViTTower(class_embedding=t.cls_token.view(-1), blocks=tuple(blocks), head=t.head, rope_ref=int(ref[0]),
                        family='eva02', **_timm_stem(t))


# ------------------------------------------------------------------------------- building
def build_clip(model_name: str | None = None, pretrained: str | None = None, *,
               checkpoint: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
               model_cfg: Mapping[str, Any] | None = None) -> CLIPModel:
    """Build a CLIP architecture (no weights loaded yet; call ``load_weights``).

    Exactly one of ``model_name``, ``config_file``, ``model_cfg`` names the architecture, or none of them
    and an OpenAI-style ``checkpoint`` from which it is inferred.

    Args:
        model_name: an open_clip model name, e.g. ``'ViT-B-16'`` (see ``open_clip.list_models()``).
        pretrained: an open_clip pretrained tag for that name, e.g. ``'openai'``; the architecture takes the
            activation the tag's weights were trained with (QuickGELU for OpenAI's, as their own code builds them).
        checkpoint: a local weight file (``.safetensors``, or ``.pt/.pth/.bin`` state dict or OpenAI
            TorchScript archive). Takes precedence over ``pretrained``.
        config_file: an open_clip model-config JSON; the model name is its stem.
        model_cfg: an open_clip model config as a dict (``embed_dim``, ``vision_cfg``, ``text_cfg``...).

    Raises:
        ValueError: conflicting or missing arguments, unknown model name or pretrained tag.
        CheckpointError: the checkpoint is needed to infer the architecture and cannot be read.
    """
    oc = _open_clip()
    given = [x is not None for x in (model_name, config_file, model_cfg)]
    if sum(given) > 1:
        raise ValueError('give only one of model_name, config_file, model_cfg')
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if not os.path.isfile(checkpoint):
            raise CheckpointError(f'checkpoint file not found: {checkpoint}')
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ValueError(f'model config file not found: {path}')
        try:
            model_cfg = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f'model config file {path} is not valid JSON: {e}') from None
        name = path.stem
    elif model_cfg is not None:
        name = str(model_cfg.get('name', 'custom'))
    elif model_name is not None:
        name = model_name
        if name not in oc.list_models():
            close = [m for m in oc.list_models() if name.lower().replace('/', '-') in m.lower()][:10]
            raise ValueError(f"unknown open_clip model '{name}'" +
                             (f"; close names: {close}" if close else '; see open_clip.list_models()'))
        if pretrained is not None and checkpoint is None:
            tags = oc.list_pretrained_tags_by_model(name)
            if pretrained not in tags:
                raise ValueError(f"unknown pretrained tag '{pretrained}' for '{name}'; valid tags: {tags}")
    elif checkpoint is not None:
        state = _normalize_keys(load_state_dict_file(checkpoint, lazy=True))
        if 'visual.proj' not in state:
            raise CheckpointError(f'cannot infer a ViT CLIP architecture from {checkpoint}: no visual.proj; '
                                  'pass model_name or config_file')
        model_cfg = _cfg_from_openai_state_dict(state)
        name = Path(checkpoint).stem
    else:
        raise ValueError('give model_name, config_file, model_cfg or checkpoint')

    source_cfg = model_cfg  # kept as given (an EVA-CLIP config stays one when saved)
    if model_cfg is not None and is_eva_clip_config(model_cfg):
        model_cfg = eva_clip_model_cfg(model_cfg)
    if model_cfg is not None:
        cfg = {k: v for k, v in model_cfg.items() if k not in ('name', 'custom_text', 'preprocess_cfg')}
        model = oc.CLIP(**cfg) if not model_cfg.get('custom_text') else oc.CustomTextCLIP(**cfg)
        text_cfg = cfg.get('text_cfg', {})
        ctx = int(text_cfg.get('context_length', 77))
        if text_cfg.get('hf_tokenizer_name'):  # SigLIP / SigLIP2 ...: a Hugging Face tokenizer, fetched when used
            hf = text_cfg['hf_tokenizer_name']
            tokenizer = LazyTokenizer(functools.partial(oc.tokenizer.HFTokenizer, hf, context_length=ctx,
                                                        **text_cfg.get('tokenizer_kwargs', {})), name=name, source=hf)
        else:
            tokenizer = oc.SimpleTokenizer(context_length=ctx)
    else:
        # the activation the tag's weights were trained with: OpenAI's ViT-B-16 weights need QuickGELU, which
        # open_clip's 'ViT-B-16' config lacks (open_clip only warns of the mismatch; the exact GELU moves features)
        quick = bool(pretrained and oc.get_pretrained_cfg(name, pretrained).get('quick_gelu', False))
        logging.getLogger('root').disabled = True  # open_clip logs "initialized randomly" at root level
        try:
            model = oc.create_model(name, pretrained=None, device=torch.get_default_device(),  # no move
                                    force_quick_gelu=quick)
        finally:
            logging.getLogger('root').disabled = False
        hf = (oc.get_model_config(name) or {}).get('text_cfg', {}).get('hf_tokenizer_name')
        tokenizer = (LazyTokenizer(functools.partial(oc.get_tokenizer, name), name=name, source=hf) if hf
                     else oc.get_tokenizer(name))
    # the input statistics the weights were trained with: the config's preprocess_cfg, else the pretrained tag's
    stats = dict((model_cfg or {}).get('preprocess_cfg') or {})
    if not stats and name and pretrained and pretrained in oc.list_pretrained_tags_by_model(name):
        stats = {k: v for k, v in oc.get_pretrained_cfg(name, pretrained).items() if k in ('mean', 'std')}
    if stats:
        model.visual.preprocess_cfg = {**(getattr(model.visual, 'preprocess_cfg', None) or {}), **stats}
    model.eval()
    return CLIPModel(model, tokenizer, name=name, pretrained=pretrained,
                     checkpoint=checkpoint, model_cfg=source_cfg)
