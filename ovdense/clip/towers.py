"""The vision transformer of a CLIP as plain torch modules: :class:`ViTTower` and its block views (open_clip,
timm EVA-02 and SigLIP), RoPE tables."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ext
from .hub import _open_clip


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
        h = _fc1_quick_gelu(self.fc1, x) if _is_quick_gelu(act, self.act) else None
        return self.fc2(_activation(self.fc1(x), act, self.act) if h is None else h)


def _split_qkv(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fused (B, N, 3 * width) projection -> q, k, v, each (B, heads, N, head_dim)."""
    B, N, C3 = qkv.shape
    q, k, v = qkv.view(B, N, 3, num_heads, C3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return q, k, v


def _merge_heads(o: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, head_dim) -> (B, N, heads * head_dim)."""
    B, nh, N, d = o.shape
    return o.transpose(1, 2).reshape(B, N, nh * d)


def _quick_gelu(h: torch.Tensor) -> torch.Tensor:
    """open_clip's QuickGELU ``h * sigmoid(1.702 h)``, bit for bit; without autograd in one temporary instead of
    three (the MLP's widest tensor: 2x faster on a CPU, where each new one is a fresh mapping to fault in)."""
    if torch.is_grad_enabled() and h.requires_grad:
        return h * torch.sigmoid(1.702 * h)
    return torch.mul(h, 1.702).sigmoid_().mul_(h)


def _is_quick_gelu(act: str, own: nn.Module) -> bool:
    """Whether the activation ``act`` (``'model'``: ``own``) is QuickGELU."""
    return act == 'quick_gelu' or act == 'model' and isinstance(own, _open_clip().model.QuickGELU)


def _activation(h: torch.Tensor, act: str, own: nn.Module) -> torch.Tensor:
    """``own(h)`` (``act='model'``), or GELU / QuickGELU in its place."""
    if act == 'gelu':
        return F.gelu(h)
    if _is_quick_gelu(act, own):
        return _quick_gelu(h)
    return own(h)


def _fc1_quick_gelu(fc1: nn.Linear, x: torch.Tensor) -> torch.Tensor | None:
    """QuickGELU of ``fc1(x)`` by ovdense's CPU kernel (``ovdense/csrc/activation.cpp``): the product without its bias,
    then the bias and the activation in one pass, in place (a few ulp from torch's; a ViT-B/16 MLP on 6 x 197 tokens
    30.9 -> 28.2 ms here). None where it does not apply: autograd, not float32 on the CPU, no bias, a trace or
    compilation (ONNX export, ``torch.compile``: torch's ops are what they know), or the extension not built (said, as
    PAMR says it)."""
    if fc1.bias is None or x.device.type != 'cpu' or x.dtype != torch.float32 or fc1.weight.dtype != torch.float32 \
            or torch.is_grad_enabled() and (x.requires_grad or fc1.weight.requires_grad) \
            or torch.jit.is_tracing() or torch.compiler.is_compiling() \
            or not ext.built("the MLPs run torch's bias and QuickGELU, slower"):
        return None
    return torch.ops.ovdense.bias_quick_gelu_(torch.matmul(x, fc1.weight.t()), fc1.bias)


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


def _timm_stem(t: nn.Module) -> dict[str, Any]:
    """The :class:`ViTTower` fields every timm ViT trunk (Eva, VisionTransformer) has under the same names."""
    return dict(conv1=t.patch_embed.proj, positional_embedding=t.pos_embed[0], ln_pre=t.norm_pre, ln_post=t.norm,
                proj=None, patch_size=t.patch_embed.patch_size[0], num_heads=t.blocks[0].attn.num_heads,
                image_size=t.patch_embed.img_size[0])
