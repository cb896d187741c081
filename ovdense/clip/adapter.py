"""open_clip adapter: build CLIP models from names, pretrained tags, local checkpoints or config JSON.

Supported architectures for the dense modes: open_clip's own ``VisionTransformer`` towers (OpenAI CLIP and the
OpenCLIP / LAION / DataComp / MetaCLIP / DFN ``ViT-*`` models), timm EVA-02 towers (``EVA02-*``, EVA-CLIP and
CLIPSelf checkpoints) and timm SigLIP / SigLIP2 towers (``ViT-*-SigLIP*``: no CLS token, a MAP attention-pool
head). Other towers (``convnext*``, ModifiedResNet ``RN50`` ...) can be loaded and used for text/image
embeddings, but :meth:`CLIPModel.vit_tower` rejects them with a clear error, since the last-block variants
(MaskCLIP, SCLIP, ClearCLIP, NACLIP) are defined on transformer blocks.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

SUPPORTED_ARCHITECTURES = (
    "open_clip VisionTransformer towers: OpenAI CLIP and OpenCLIP/LAION/DataComp/MetaCLIP/DFN 'ViT-*' "
    "models (any patch size and width), timm EVA-02 towers ('EVA02-*', EVA-CLIP / CLIPSelf checkpoints) and "
    "timm SigLIP / SigLIP2 towers ('ViT-*-SigLIP*', MAP head). Not supported for dense features: other timm "
    "towers, ConvNeXt, ModifiedResNet (RN*).")

WEIGHT_FORMATS = ('open_clip', 'eva_clip')
# keys present in OpenAI TorchScript state dicts that are not parameters
_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')
# OpenAI CLIP's input statistics (RGB in [0, 1]), open_clip's OPENAI_DATASET_MEAN / _STD
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights for a tag are neither cached locally nor downloadable."""


@dataclass(frozen=True)
class ViTBlock:
    """One pre-norm transformer block of an open_clip ``VisionTransformer`` as plain torch modules.

    ``x = x + ls_1(attn(ln_1(x)))``; ``x = x + ls_2(fc2(act(fc1(ln_2(x)))))``.
    """
    ln_1: nn.LayerNorm
    attn: nn.MultiheadAttention
    ls_1: nn.Module
    ln_2: nn.LayerNorm
    fc1: nn.Linear
    act: nn.Module
    fc2: nn.Linear
    ls_2: nn.Module

    @property
    def num_heads(self) -> int:
        return self.attn.num_heads

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, heads, N, head_dim) of the (normed) tokens (B, N, width)."""
        return _split_qkv(F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias), self.attn.num_heads)

    def out(self, o: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, head_dim) attention output -> (B, N, width) after the output projection."""
        return self.attn.out_proj(_merge_heads(o))

    def mlp(self, x: torch.Tensor, act: str = 'model') -> torch.Tensor:
        return self.fc2(_activation(self.fc1(x), act, self.act))


def _split_qkv(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fused (B, N, 3 * width) projection -> q, k, v, each (B, heads, N, head_dim)."""
    B, N, C3 = qkv.shape
    q, k, v = qkv.view(B, N, 3, num_heads, C3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return q, k, v


def _merge_heads(o: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, head_dim) -> (B, N, heads * head_dim)."""
    B, nh, N, d = o.shape
    return o.transpose(1, 2).reshape(B, N, nh * d)


def _activation(h: torch.Tensor, act: str, own: nn.Module) -> torch.Tensor:
    """``own(h)`` (``act='model'``), or GELU / QuickGELU in its place."""
    if act == 'gelu':
        return F.gelu(h)
    if act == 'quick_gelu':
        return h * torch.sigmoid(1.702 * h)
    return own(h)


@dataclass(frozen=True)
class TimmBlock:
    """One timm ``Block`` (timm ``VisionTransformer``: SigLIP / SigLIP2) as plain modules: a fused qkv with bias.

    ``x = x + ls_1(proj(attn(ln_1(x))))``; ``x = x + ls_2(fc2(mlp_norm(act(fc1(ln_2(x))))))``.
    """
    ln_1: nn.LayerNorm
    qkv_proj: nn.Linear
    proj: nn.Linear
    ls_1: nn.Module
    ln_2: nn.LayerNorm
    fc1: nn.Linear
    act: nn.Module
    mlp_norm: nn.Module
    fc2: nn.Linear
    ls_2: nn.Module
    num_heads: int

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _split_qkv(self.qkv_proj(x), self.num_heads)

    def out(self, o: torch.Tensor) -> torch.Tensor:
        return self.proj(_merge_heads(o))

    def mlp(self, x: torch.Tensor, act: str = 'model') -> torch.Tensor:
        return self.fc2(self.mlp_norm(_activation(self.fc1(x), act, self.act)))


@dataclass(frozen=True)
class MAPHead:
    """SigLIP's multihead attention-pool head (timm ``AttentionPoolLatent``: a learnt query attends to all tokens,
    ``y = proj(attn)``, ``y + mlp(norm(y))``) as the dense path uses it: the attention replaced by identity on each
    token's value, ``y = proj(v(x))``, ``y + mlp(norm(y))`` per token (as MaskCLIP does with CLIP's attention pool).
    :meth:`pool` is the head itself (the global image embedding)."""
    attn_pool: nn.Module

    @property
    def out_features(self) -> int:
        return self.attn_pool.proj.out_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(..., width) tokens -> (..., embed_dim), each on its own."""
        p = self.attn_pool
        C = x.shape[-1]
        bias = p.kv.bias[C:] if p.kv.bias is not None else None
        y = p.proj(F.linear(x, p.kv.weight[C:], bias))
        return y + p.mlp(p.norm(y))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, width) tokens -> (B, embed_dim): the attention pool over all of them."""
        return self.attn_pool(x)


@dataclass(frozen=True)
class EVABlock:
    """One EVA-02 block (timm ``EvaBlock``: separate q/k/v with no k bias, RoPE on the patch tokens'
    queries and keys, a sub-LN on the attention output, SwiGLU with its own LayerNorm) as plain modules.

    ``x = x + proj(attn_norm(attn(ln_1(x))))``; ``x = x + fc2(mlp_norm(silu(fc1_g y) * fc1_x y))``, y = ln_2(x).
    """
    ln_1: nn.LayerNorm
    q_proj: nn.Linear
    k_proj: nn.Linear
    v_proj: nn.Linear
    attn_norm: nn.Module
    proj: nn.Linear
    ln_2: nn.LayerNorm
    fc1_g: nn.Linear
    fc1_x: nn.Linear
    mlp_norm: nn.Module
    fc2: nn.Linear
    num_heads: int
    ls_1: nn.Module = nn.Identity()
    ls_2: nn.Module = nn.Identity()

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, heads, N, head_dim); ``rope`` (sin, cos) of shape (h*w, head_dim) rotates the
        queries and keys of the last h*w tokens (the patches; CLS and any extra query tokens come first)."""
        B, N, _ = x.shape
        nh = self.num_heads
        q, k, v = (f(x).view(B, N, nh, -1).transpose(1, 2) for f in (self.q_proj, self.k_proj, self.v_proj))
        if rope is not None:
            sin, cos = rope
            n = sin.shape[0]
            q = torch.cat([q[:, :, :N - n], apply_rope(q[:, :, N - n:], sin, cos)], 2)
            k = torch.cat([k[:, :, :N - n], apply_rope(k[:, :, N - n:], sin, cos)], 2)
        return q, k, v

    def out(self, o: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attn_norm(_merge_heads(o)))

    def mlp(self, x: torch.Tensor, act: str = 'model') -> torch.Tensor:
        if act != 'model':
            raise ValueError(f"EVA-02's SwiGLU has no activation to replace (act='{act}'); use act='model'")
        return self.fc2(self.mlp_norm(F.silu(self.fc1_g(x)) * self.fc1_x(x)))


def rope_tables(h: int, w: int, head_dim: int, ref: int, *, device: torch.device | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """EVA-02's 2-D rotary tables (sin, cos), each (h*w, head_dim), row r*w + c for patch (r, c).

    Frequencies ``10000^(-k/(head_dim/4))``, coordinates ``t = i / n * ref`` per axis (n = h for rows, w for
    columns: the reference's ``i / n * pt_seq_len`` on square grids, extended to non-square ones), the
    first half of the dims for the row, the second for the column, each frequency repeated for an adjacent
    pair (the interleaved convention).
    """
    q = head_dim // 4
    bands = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float32, device=device) / q))
    ty = torch.arange(h, dtype=torch.float32, device=device) / h * ref
    tx = torch.arange(w, dtype=torch.float32, device=device) / w * ref
    gy, gx = torch.meshgrid(ty, tx, indexing='ij')
    pos = torch.stack([gy, gx], -1)[..., None] * bands  # (h, w, 2, q)
    pos = pos.reshape(h * w, 2 * q)
    return pos.sin().repeat_interleave(2, -1), pos.cos().repeat_interleave(2, -1)


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate (..., n, head_dim) by the tables: ``x cos + rot(x) sin``, rot mapping each adjacent pair
    (a, b) to (-b, a)."""
    rot = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)
    return x * cos.to(x.dtype) + rot * sin.to(x.dtype)


@dataclass(frozen=True)
class ViTTower:
    """The vision transformer of a CLIP model, as the dense code needs it.

    Attributes:
        conv1: patch embedding, ``Conv2d(3, width, patch, stride=patch)`` (EVA-02, SigLIP: with a bias).
        class_embedding: (width,) the CLS token, or None (SigLIP: every token is a patch).
        positional_embedding: (P + g*g, width) for the native g x g grid, the P = ``num_prefix`` CLS row first.
        ln_pre, ln_post: layer norms before the blocks (EVA-02, SigLIP: none, an identity) and after them.
        blocks: the transformer blocks (:class:`ViTBlock`, :class:`EVABlock` or :class:`TimmBlock`).
        proj: (width, embed_dim) projection into the joint image-text space, or None with ``head``.
        patch_size: patch side in pixels.
        num_heads: attention heads per block.
        image_size: native input side in pixels.
        head: the projection as a Linear (EVA-02, with a bias) or a :class:`MAPHead` (SigLIP), or None with
            ``proj``.
        rope_ref: EVA-02's rotary position embedding: the reference grid side of its coordinates
            (``pt_hw_seq_len``, 16), or None for towers without it.
        family: ``'openai'`` (open_clip's VisionTransformer), ``'eva02'`` (timm's Eva) or ``'siglip'``
            (timm's VisionTransformer with a MAP head).
    """
    conv1: nn.Conv2d
    class_embedding: torch.Tensor | None
    positional_embedding: torch.Tensor
    ln_pre: nn.Module
    blocks: tuple
    ln_post: nn.LayerNorm
    proj: torch.Tensor | None
    patch_size: int
    num_heads: int
    image_size: int
    head: nn.Linear | MAPHead | None = None
    rope_ref: int | None = None
    family: str = 'openai'

    @property
    def width(self) -> int:
        return self.conv1.out_channels

    @property
    def num_prefix(self) -> int:
        """Tokens before the patches: 1 (CLS) or 0 (SigLIP)."""
        return 0 if self.class_embedding is None else 1

    @property
    def embed_dim(self) -> int:
        return self.head.out_features if self.head is not None else self.proj.shape[1]

    def require_cls(self, reason: str) -> None:
        """Raise a ValueError giving ``reason`` when the tower has no CLS token (SigLIP)."""
        if self.class_embedding is None:
            raise ValueError(f'{reason}; this {self.family} tower has no CLS token: use an OpenAI / OpenCLIP or '
                             'EVA-02 ViT')

    @property
    def native_grid(self) -> int:
        return self.image_size // self.patch_size

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., width) tokens after ``ln_post`` -> (..., embed_dim) in the text space, each on its own."""
        return self.head(x) if self.head is not None else x @ self.proj

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, width) tokens after ``ln_post`` -> (B, embed_dim) global image embedding: the projected CLS
        token, or SigLIP's attention pool over all tokens."""
        return self.head.pool(x) if isinstance(self.head, MAPHead) else self.project(x[:, 0])

    def rope(self, h: int, w: int, *, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(sin, cos) rotary tables for an h x w patch grid, or None for towers without RoPE."""
        if self.rope_ref is None:
            return None
        return rope_tables(h, w, self.width // self.num_heads, self.rope_ref, device=device)


def _open_clip():
    import open_clip  # deferred: importing open_clip costs seconds
    return open_clip


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
        state = load_state_dict_file(path)
        state = _normalize_keys(state, self.model.state_dict().keys())
        self.weights_format = 'open_clip'
        if is_eva_clip_state(state):  # EVA-CLIP / CLIPSelf files: onto the timm trunk by name, strictly
            state = eva_clip_to_open_clip(state)
            self.weights_format = 'eva_clip'
        missing, unexpected = _diff_keys(self.model, state)
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint {path} does not fit model '{self.name}': "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # shape mismatches
            raise CheckpointError(f"checkpoint {path} does not fit model '{self.name}': {e}") from None

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
        if getattr(m, 'pool_type', 'argmax') != 'argmax' or getattr(m, 'attn_mask', True) is None:
            raise ValueError(f"model '{self.name}': learnt prompt contexts need a causal text tower pooled at the "
                             f"end-of-text token (CLIP's); this one pools '{m.pool_type}'"
                             f"{' without a causal mask' if m.attn_mask is None else ''}")
        L = x.shape[1]
        if L > m.positional_embedding.shape[0]:
            raise ValueError(f'{L} tokens exceed the text context length {m.positional_embedding.shape[0]}')
        x = x + m.positional_embedding[:L].to(x.dtype)
        mask = torch.full((L, L), float('-inf'), device=x.device, dtype=x.dtype).triu_(1)
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = m.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def encode_text(self, texts: Sequence[str] | torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
        """Text embeddings (N, D) of strings or token ids."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        return self.model.encode_text(tokens, normalize=normalize)

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

    def text_fingerprint(self) -> str:
        """Hash of the text tower's weights and tokenizer: the key of cached text embeddings. Recomputed
        whenever :meth:`text_state` changed (any load or in-place edit), so cached embeddings never go stale."""
        state = self.text_state()
        if self._text_fingerprint is None or self._text_fingerprint[0] != state:
            h = hashlib.blake2b(digest_size=16)
            h.update(getattr(self.tokenizer, 'source', type(self.tokenizer).__name__).encode())
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

    def lock_vision(self, unlocked_blocks: int = 0) -> None:
        """Freeze the vision tower but its last ``unlocked_blocks`` blocks (then with ``ln_post`` and the
        projection). open_clip towers: open_clip's ``lock_image_tower``, whose groups are the stem, each
        block, the last block with ``ln_post``, and the projection; EVA-02 (timm) towers: the same parts,
        unlocked on the tower view (timm's own groups differ); SigLIP's MAP head is the projection."""
        tower = self.vit_tower() if isinstance(self.model.visual, _open_clip().timm_model.TimmModel) else None
        if tower is None:
            self.model.lock_image_tower(unlocked_groups=unlocked_blocks + 1 if unlocked_blocks else 0)
            return
        self.model.visual.requires_grad_(False)
        if unlocked_blocks:
            for blk in tower.blocks[len(tower.blocks) - unlocked_blocks:]:
                for m in vars(blk).values():
                    if isinstance(m, nn.Module):
                        m.requires_grad_(True)
            tower.ln_post.requires_grad_(True)
            (tower.head.attn_pool if isinstance(tower.head, MAPHead) else tower.head).requires_grad_(True)

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


def _timm_stem(t: nn.Module) -> dict[str, Any]:
    """The :class:`ViTTower` fields every timm ViT trunk (Eva, VisionTransformer) has under the same names."""
    return dict(conv1=t.patch_embed.proj, positional_embedding=t.pos_embed[0], ln_pre=t.norm_pre, ln_post=t.norm,
                proj=None, patch_size=t.patch_embed.patch_size[0], num_heads=t.blocks[0].attn.num_heads,
                image_size=t.patch_embed.img_size[0])


# ------------------------------------------------------------------------------- building
def build_clip(model_name: str | None = None, pretrained: str | None = None, *,
               checkpoint: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
               model_cfg: Mapping[str, Any] | None = None) -> CLIPModel:
    """Build a CLIP architecture (no weights loaded yet; call ``load_weights``).

    Exactly one of ``model_name``, ``config_file``, ``model_cfg`` names the architecture, or none of them
    and an OpenAI-style ``checkpoint`` from which it is inferred.

    Args:
        model_name: an open_clip model name, e.g. ``'ViT-B-16'`` (see ``open_clip.list_models()``).
        pretrained: an open_clip pretrained tag for that name, e.g. ``'openai'``.
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
        state = _normalize_keys(load_state_dict_file(checkpoint))
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
        logging.getLogger('root').disabled = True  # open_clip logs "initialized randomly" at root level
        try:
            model = oc.create_model(name, pretrained=None, device=torch.get_default_device())  # no move
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


@contextlib.contextmanager
def _hub_offline_unless_reachable() -> Iterator[None]:
    """Hugging Face hub offline mode while the hub (``HF_ENDPOINT``, huggingface.co by default) cannot be reached:
    its files come from the cache."""
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if _network_reachable(urlparse(constants.ENDPOINT).hostname or 'huggingface.co'):
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


class LazyTokenizer:
    """A tokenizer made on first use (a Hugging Face one reads files, maybe from the network: building a model
    must not), whose failure names the tokenizer and what to do."""

    def __init__(self, factory: Callable[[], Any], *, name: str, source: str) -> None:
        self.factory, self.name, self.source = factory, name, source
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                try:
                    with _hub_offline_unless_reachable():  # no network: the local cache at once, not 5 retries
                        self._tokenizer = self.factory()
                except ImportError as e:
                    raise PretrainedWeightsUnavailable(
                        f"the tokenizer of '{self.name}' ('{self.source}', a Hugging Face tokenizer) needs the "
                        f'transformers package ({e}); tools/install.sh installs it') from None
                except Exception as e:  # noqa: BLE001 - huggingface_hub / transformers raise many types offline
                    raise PretrainedWeightsUnavailable(
                        f"the tokenizer of '{self.name}' ('{self.source}' on the Hugging Face hub) is neither in the "
                        f'local cache nor downloadable ({type(e).__name__}: {str(e).splitlines()[0][:300]}). Fetch it '
                        f"where you have network (open_clip.get_tokenizer('{self.name}') caches it), or give a "
                        f"local tokenizer directory as text_cfg.hf_tokenizer_name in the model config") from None
        return self._tokenizer

    def __call__(self, texts: Any, context_length: int | None = None) -> torch.Tensor:
        tok = self.get()
        return tok(texts) if context_length is None else tok(texts, context_length)


def _cfg_from_openai_state_dict(state: Mapping[str, torch.Tensor]) -> dict:
    """open_clip model config of an OpenAI-format ViT state dict (as openai's ``build_model``)."""
    width = state['visual.conv1.weight'].shape[0]
    layers = len([k for k in state if k.startswith('visual.') and k.endswith('.attn.in_proj_weight')])
    patch = state['visual.conv1.weight'].shape[-1]
    grid = round((state['visual.positional_embedding'].shape[0] - 1) ** 0.5)
    twidth = state['ln_final.weight'].shape[0]
    return dict(embed_dim=state['text_projection'].shape[1], quick_gelu=True,
                vision_cfg=dict(layers=layers, width=width, patch_size=patch, image_size=patch * grid),
                text_cfg=dict(context_length=state['positional_embedding'].shape[0],
                              vocab_size=state['token_embedding.weight'].shape[0], width=twidth,
                              heads=twidth // 64,
                              layers=len({k.split('.')[2] for k in state if k.startswith('transformer.resblocks')})))


# ------------------------------------------------------------------------------- EVA-CLIP
def is_eva_clip_config(cfg: Mapping[str, Any]) -> bool:
    """True for an EVA-CLIP / CLIPSelf model config (``vision_cfg.eva_model_name``)."""
    return 'eva_model_name' in cfg.get('vision_cfg', {})


# the EVA-CLIP vision options of the EVA-02 variant timm implements (xattn / fusedLN only pick kernels)
_EVA_REQUIRED = dict(postnorm=False, qkv_bias=True, rope=True, subln=True, naiveswiglu=True)


def eva_clip_model_cfg(cfg: Mapping[str, Any]) -> dict:
    """The open_clip model config of an EVA-CLIP config: a timm EVA-02 trunk of the same size (registered
    with timm under a name made of its sizes) and open_clip's text tower."""
    v, t = cfg['vision_cfg'], cfg['text_cfg']
    unsupported = {k: v[k] for k, want in _EVA_REQUIRED.items() if k in v and v[k] != want}
    if unsupported or v.get('layer_scale_init_value') or v.get('global_average_pool'):
        raise ValueError(f'EVA-CLIP vision config not supported (EVA-02 with RoPE, sub-LN, SwiGLU, q/v bias): '
                         f'{unsupported or v}')
    heads = v['width'] // v.get('head_width', 64)
    name = _register_eva_trunk(width=v['width'], depth=v['layers'], heads=heads, mlp_ratio=float(v['mlp_ratio']),
                               patch=v['patch_size'], image=v['image_size'], ref=int(v.get('pt_hw_seq_len', 16)))
    text = dict(context_length=t['context_length'], vocab_size=t['vocab_size'], width=t['width'],
                heads=t['heads'], layers=t['layers'])
    return dict(embed_dim=cfg['embed_dim'], custom_text=True,
                vision_cfg=dict(image_size=v['image_size'], timm_model_name=name, timm_model_pretrained=False,
                                timm_pool='token', timm_proj=None),
                text_cfg=text)


def _register_eva_trunk(*, width: int, depth: int, heads: int, mlp_ratio: float, patch: int, image: int,
                        ref: int) -> str:
    """A timm model name for an EVA-02 trunk of these sizes (EVA-CLIP's sub-LN / SwiGLU / RoPE variant,
    timm's ``eva02_*_clip``), registered with timm on first use."""
    import timm
    from timm.models import build_model_with_cfg, register_model
    from timm.models.eva import Eva
    name = f'ovdense_eva02_w{width}_d{depth}_h{heads}_m{mlp_ratio:g}_p{patch}_i{image}_r{ref}'.replace('.', 'x')
    if name not in timm.list_models(name):
        def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
            if pretrained:
                raise ValueError(f'{name} has no timm pretrained weights: load an EVA-CLIP checkpoint')
            args = dict(img_size=image, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads,
                        qkv_fused=False, mlp_ratio=mlp_ratio, swiglu_mlp=True, scale_mlp=True, scale_attn_inner=True,
                        use_rot_pos_emb=True, ref_feat_shape=(ref, ref), global_pool='token')
            kwargs.pop('pretrained_cfg', None)
            cfg = dict(architecture=name, input_size=(3, image, image), num_classes=0)
            return build_model_with_cfg(Eva, name, False, pretrained_cfg=cfg, **dict(args, **kwargs))
        entry.__name__ = name
        entry.__module__ = __name__
        register_model(entry)
    return name


# EVA-CLIP / CLIPSelf visual keys -> timm EVA-02 trunk keys (open_clip's ``visual.trunk.*``)
_EVA_KEY_MAP = (('.attn.q_bias', '.attn.q_proj.bias'), ('.attn.v_bias', '.attn.v_proj.bias'),
                ('.attn.inner_attn_ln.', '.attn.norm.'), ('.mlp.w1.', '.mlp.fc1_g.'), ('.mlp.w2.', '.mlp.fc1_x.'),
                ('.mlp.ffn_ln.', '.mlp.norm.'), ('.mlp.w3.', '.mlp.fc2.'))


def is_eva_clip_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for an EVA-CLIP-format state dict (``visual.blocks.N.attn.q_bias`` ... ``mlp.w1``)."""
    return any(k.startswith('visual.blocks.') and (k.endswith('.attn.q_bias') or '.mlp.w1.' in k) for k in state)


def eva_clip_to_open_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An EVA-CLIP state dict in open_clip's names (``visual.trunk.*``; the text tower and ``logit_scale``
    keep theirs). The RoPE tables (``rope.freqs_cos`` / ``freqs_sin``) are dropped: they are recomputed."""
    out = {}
    for k, v in state.items():
        if k.startswith('visual.'):
            if k.endswith(('rope.freqs_cos', 'rope.freqs_sin')):
                continue
            k = 'visual.trunk.' + k[len('visual.'):]
            for a, b in _EVA_KEY_MAP:
                k = k.replace(a, b)
        out[k] = v
    return out


def open_clip_to_eva_clip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`eva_clip_to_open_clip` (without the RoPE tables, which EVA-CLIP recomputes
    when loading with ``RoPE=1``)."""
    out = {}
    for k, v in state.items():
        if k.startswith('visual.trunk.'):
            k = 'visual.' + k[len('visual.trunk.'):]
            for a, b in _EVA_KEY_MAP:
                k = k.replace(b, a)
        out[k] = v
    return out


# ------------------------------------------------------------------------------- loading
def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict without unpickling arbitrary objects.

    ``.safetensors`` files are read with safetensors; others with ``torch.load(weights_only=True)``.
    An OpenAI TorchScript archive (the original ``ViT-B-16.pt``) is read with ``torch.jit.load``, which
    executes no pickled Python. mmengine checkpoints (``{'state_dict': ...}``) are unwrapped.

    Raises:
        CheckpointError: missing file, or a file that is none of the above.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f'cannot read safetensors checkpoint {path}: {e}') from None
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for foreign files
        if zipfile.is_zipfile(path) and any(n.split('/', 1)[-1].startswith('code/')
                                            for n in zipfile.ZipFile(path).namelist()):
            try:
                return {k: v.float() for k, v in torch.jit.load(path, map_location='cpu').state_dict().items()}
            except Exception as e2:  # noqa: BLE001
                raise CheckpointError(f'cannot read TorchScript checkpoint {path}: {e2}') from None
        raise CheckpointError(f'cannot read checkpoint {path} as a weights-only state dict '
                              f'(torch.load(weights_only=True) failed: {str(e).splitlines()[0]})') from None
    if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'checkpoint {path} is not a state dict of tensors')
    return obj


def _normalize_keys(state: Mapping[str, torch.Tensor],
                    model_keys: Iterable[str] = ('visual.proj',)) -> dict[str, torch.Tensor]:
    """Strip wrappers (``module.``, ``model.``, ``backbone.clip.model.``) and OpenAI extras; cast to float32."""
    model_keys = set(model_keys)
    out = {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS}
    for prefix in ('module.', 'model.', 'clip.model.', 'backbone.clip.model.'):
        if not (out.keys() & model_keys) and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


def _diff_keys(model: nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    keys = set(model.state_dict().keys())
    return sorted(keys - state.keys()), sorted(state.keys() - keys)


def _network_reachable(host: str, timeout: float = 3.0) -> bool:
    """True when ``host`` resolves within ``timeout`` seconds (a DNS failure answers at once offline)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def resolve_pretrained(name: str, tag: str, *, cache_dir: str | None = None) -> str:
    """Local path of the weights for an open_clip (name, pretrained tag), downloading if possible.

    Raises:
        ValueError: unknown tag for this model (the message lists the valid ones).
        PretrainedWeightsUnavailable: not cached and no network; says how to pass a local file.
    """
    oc = _open_clip()
    cfg = oc.get_pretrained_cfg(name, tag)
    if not cfg:
        raise ValueError(f"unknown pretrained tag '{tag}' for '{name}'; valid tags: "
                         f"{oc.list_pretrained_tags_by_model(name)}")
    hub = cfg.get('hf_hub', '')
    url = cfg.get('url', '')
    if cfg.get('file'):
        return cfg['file']
    if hub:
        from huggingface_hub import hf_hub_download
        repo, filename = os.path.split(hub)
        filename = filename or 'open_clip_pytorch_model.bin'
        names = [filename.replace('.bin', '.safetensors').replace('.pth', '.safetensors'), filename]
        for fn in dict.fromkeys(names):
            try:
                return hf_hub_download(repo_id=repo, filename=fn, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # noqa: BLE001 - not in the local cache
                pass
    elif url:
        local = os.path.join(cache_dir or os.path.expanduser('~/.cache/clip'), os.path.basename(url))
        if os.path.isfile(local):
            return local
    source = f'huggingface.co/{hub}' if hub else url
    host = 'huggingface.co' if hub else url.split('/')[2]
    how = (f"Download it where you have network (open_clip.create_model('{name}', pretrained='{tag}') "
           f"caches it) and pass the file with checkpoint=PATH (tools: --checkpoint PATH; it may be a "
           f".safetensors, a .pt/.pth state dict, or the OpenAI TorchScript archive).")
    if not _network_reachable(host):
        raise PretrainedWeightsUnavailable(
            f"pretrained weights '{name}' / '{tag}' are not cached locally and {host} cannot be reached "
            f"(no network). {how}")
    try:
        return oc.pretrained.download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001
        raise PretrainedWeightsUnavailable(
            f"downloading pretrained weights '{name}' / '{tag}' from {source} failed ({e}). {how}") from None


# ------------------------------------------------------------------------------- templates
_EXTRA_SCENE_TEMPLATES = ('there is a {} in the scene.', 'there is the {} in the scene.',
                          'this is a {} in the scene.', 'this is the {} in the scene.',
                          'this is one {} in the scene.')


@functools.lru_cache(maxsize=None)  # a pure function of the name, asked for on every text-encoder call
def prompt_templates(name: str) -> tuple[str, ...]:
    """Prompt template sets, each template a string with ``{}`` for the class name.

    ``'openai'``: the 80 OpenAI ImageNet templates (open_clip's ``OPENAI_IMAGENET_TEMPLATES``, the
    order SCLIP/NACLIP/ClearCLIP use); ``'simple'``: open_clip's 7 ``SIMPLE_IMAGENET_TEMPLATES``;
    ``'maskclip'``: the 80 plus MaskCLIP's 5 scene templates (85); ``'none'``: the bare name.
    """
    from open_clip import zero_shot_metadata as z
    sets = {
        'openai': tuple(t('{}') for t in z.OPENAI_IMAGENET_TEMPLATES),
        'simple': tuple(t('{}') for t in z.SIMPLE_IMAGENET_TEMPLATES),
        'none': ('{}',),
    }
    sets['maskclip'] = sets['openai'] + _EXTRA_SCENE_TEMPLATES
    if name not in sets:
        raise ValueError(f"unknown template set '{name}'; valid: {sorted(sets)}")
    return sets[name]
