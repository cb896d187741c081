"""Dense CLIP ViT: per-patch features in the text space, by a dense method (:mod:`ovdense.models.methods`)."""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...clip import CLIPModel, ViTBlock, ViTTower, build_clip
from ...registry import register
from ..methods import DenseTokens, OVDenseMethod, build_method, registered_methods

POS_INTERP = ('sclip', 'bicubic', 'bilinear')
PATCH_PADDING = ('drop', 'corner')
ACTIVATIONS = ('model', 'gelu', 'quick_gelu')


def _check(value: Any, valid: Sequence, what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} '{value}'; valid: {list(valid)}")


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int], *, method: str = 'sclip',
                          num_prefix: int = 1) -> torch.Tensor:
    """Position embedding (P + h*w, C) for a h x w patch grid from the native (P + g*g, C) one, P = ``num_prefix``
    rows for the CLS token (1) or none (0: SigLIP).

    Methods (the prefix rows are always kept as they are):
        ``'sclip'``: SCLIP/NACLIP/ClearCLIP: unchanged when h*w == g*g, else bicubic with
            ``scale_factor=((h+0.1)/g, (w+0.1)/g)``, align_corners False.
        ``'bicubic'``: MaskCLIP/CLIPSelf: bicubic to the size (h, w), align_corners False.
        ``'bilinear'``: DenseCLIP: bilinear to the size (h, w), align_corners False.
    """
    _check(method, POS_INTERP, 'position interpolation')
    h, w = grid
    n = pos.shape[0] - num_prefix
    g = int(math.isqrt(n))
    if h * w == n and (method == 'sclip' or (h, w) == (g, g)):
        return pos
    cls_pos, patch_pos = pos[:num_prefix], pos[num_prefix:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    if method == 'sclip':
        patch_pos = F.interpolate(patch_pos, scale_factor=(float((h + 0.1) / g), float((w + 0.1) / g)), mode='bicubic',
                                  align_corners=False)  # float(): constants of a traced (exported) graph
    else:
        patch_pos = F.interpolate(patch_pos, size=(h, w), mode=method, align_corners=False)
    assert patch_pos.shape[-2:] == (h, w), (patch_pos.shape, grid)
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(h * w, -1)])


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, P + h*w, C) tokens -> (B, C, h, w) map of the last h*w (the patches, row-major)."""
    h, w = grid
    return tokens[:, tokens.shape[1] - h * w:].transpose(1, 2).reshape(tokens.shape[0], -1, h, w)


class Trunk(NamedTuple):
    """The blocks before a method's own part: ``tokens`` (B, P + h*w, width) leaving the last block run,
    ``grid`` (h, w), ``rope`` (EVA-02's tables or None), ``outputs`` (every run block's output tokens, when
    asked for), ``intermediates`` (the backbone's ``out_indices`` maps among the run blocks), ``attentions`` (the
    (B, heads, P + h*w, P + h*w) attention probabilities of the blocks asked for, in their order)."""
    tokens: torch.Tensor
    grid: tuple[int, int]
    rope: tuple[torch.Tensor, torch.Tensor] | None
    outputs: list[torch.Tensor]
    intermediates: list[torch.Tensor]
    attentions: list[torch.Tensor]


@register('MODELS')
class OVCLIPViT(BaseModule):
    """A frozen (by default) CLIP ViT giving per-patch embeddings aligned with text, by a dense method.

    The method (a registered :class:`~ovdense.models.methods.OVDenseMethod`, ``method=dict(type=...)``) runs the
    tower through this module's public pieces; :func:`~ovdense.models.methods.registered_methods` lists them (one
    file each in :mod:`ovdense.models.methods`, and any a user registers). The tokens end with ``ln_post`` and the projection into the text
    space. Towers without a CLS token (SigLIP) have only patch tokens, and their projection is the MAP head's
    value path (:class:`~ovdense.clip.towers.MAPHead`).

    Args:
        clip: a :class:`CLIPModel` or the keyword arguments of :func:`ovdense.clip.build_clip`
            (``model_name``, ``pretrained``, ``checkpoint``, ``config_file``, ``model_cfg``).
        method: the dense method: its config ``dict(type='OVSCLIP', ...)``, an instance, or None (``OVVanilla``).
        out_indices: blocks whose patch-token outputs are also returned, as (B, width, h, w) maps.
        pos_interp: position-embedding interpolation, one of ``POS_INTERP``.
        patch_padding: ``'drop'`` leftover pixels (floor(H/p) patches) or zero-pad right/bottom
            (``'corner'``, MaskCLIP).
        ln_eps: override every layer norm's epsilon (None: the model's own).
        act: MLP activation, ``'model'`` (the model's own), ``'gelu'`` or ``'quick_gelu'``.
        frozen: no gradients and eval mode for all CLIP (and method) weights.
        pretrained: a CLIP checkpoint file (mmseg's model-level ``pretrained``): replaces ``clip``'s checkpoint.
        init_cfg: mmengine init config (unused: weights come from ``clip``).
    """

    def __init__(self, clip: CLIPModel | dict, method: dict | OVDenseMethod | None = None, *,
                 out_indices: Sequence[int] = (), pos_interp: str = 'sclip', patch_padding: str = 'drop',
                 ln_eps: float | None = None, act: str = 'model', frozen: bool = True,
                 pretrained: str | None = None, init_cfg: dict | None = None, **renamed: Any) -> None:
        super().__init__(init_cfg=init_cfg)
        _refuse_renamed(method, renamed)
        if pretrained is not None:  # mmseg's model-level ``pretrained``: the CLIP checkpoint file
            if not isinstance(clip, dict):
                raise ValueError('pretrained= names a CLIP checkpoint for clip=dict(...); a built CLIPModel has its own')
            clip = dict(clip, checkpoint=pretrained)
        _check(pos_interp, POS_INTERP, 'position interpolation')
        _check(patch_padding, PATCH_PADDING, 'patch padding')
        _check(act, ACTIVATIONS, 'activation')
        self.clip = clip if isinstance(clip, CLIPModel) else build_clip(**clip)
        self.method = build_method(method)
        self.pos_interp = pos_interp
        self.patch_padding = patch_padding
        self.ln_eps = ln_eps
        self.act = act
        self.frozen = frozen
        # a view of the tower's modules (same parameter objects), checked and built once
        self._tower = self.clip.vit_tower()
        self.method.check(self)
        n = len(self._tower.blocks)
        if any(not -n <= i < n for i in out_indices):
            raise ValueError(f'out_indices {list(out_indices)} out of range: this CLIP has {n} blocks '
                             f'(valid: {-n}..{n - 1})')
        self.out_indices = tuple(i % n for i in out_indices)
        if frozen:
            self.clip.requires_grad_(False)
            self.method.requires_grad_(False)

    @property
    def tower(self) -> ViTTower:
        return self._tower

    @property
    def embed_dim(self) -> int:
        return self.tower.embed_dim

    @property
    def patch_size(self) -> int:
        return self.tower.patch_size

    @property
    def needs_text(self) -> bool:
        """The method's forward takes the vocabulary's query embeddings (``text=``)."""
        return self.method.needs_text

    def init_weights(self) -> None:
        """Load the CLIP weights named in ``clip`` and the method's own (once)."""
        if not self._is_init:
            if self.clip.weights_pending:  # not already loaded from a checkpoint holding them
                self.clip.load_weights()
            self.method.init_weights()
            if self.frozen:
                self.method.requires_grad_(False)
            self._is_init = True

    def train(self, mode: bool = True) -> 'OVCLIPViT':
        super().train(mode)
        if self.frozen:
            self.clip.eval()
            self.method.eval()
        return self

    # ------------------------------------------------------------------ pieces
    def ln(self, ln: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """A layer norm of the tower, with the ``ln_eps`` override."""
        if self.ln_eps is None or not isinstance(ln, nn.LayerNorm):
            return ln(x)
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, self.ln_eps)

    def mlp(self, blk: ViTBlock, x: torch.Tensor) -> torch.Tensor:
        """A block's FFN with the ``act`` override: (B, N, width) -> (B, N, width)."""
        return blk.mlp(x, self.act)

    @staticmethod
    def qkv(blk: ViTBlock, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, heads, N, head_dim) of normed tokens (B, N, width) (EVA-02: RoPE on the patches' q, k)."""
        return blk.qkv(x, rope)

    @staticmethod
    def out(blk: ViTBlock, o: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, head_dim) attention output -> (B, N, width) after the block's output projection."""
        return blk.out(o)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, width) tokens leaving the blocks -> (B, N, D): ``ln_post``, then the projection into the text
        space."""
        return self.tower.project(self.ln(self.tower.ln_post, x))

    @staticmethod
    def to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, P + h*w, C) -> (B, C, h, w) of the patch tokens."""
        return tokens_to_map(tokens, grid)

    def patch_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """CLS (if the tower has one) + patch tokens with position embeddings, before ln_pre: (B, P + h*w, width),
        (h, w)."""
        t = self.tower
        p = t.patch_size
        if self.patch_padding == 'corner' and (x.shape[-2] % p or x.shape[-1] % p):
            x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        feat = t.conv1(x.to(t.conv1.weight.dtype))
        B, C, h, w = feat.shape
        tokens = feat.flatten(2).transpose(1, 2)
        if t.class_embedding is not None:
            tokens = torch.cat([t.class_embedding.to(tokens.dtype).expand(B, 1, C), tokens], 1)
        pos = interpolate_pos_embed(t.positional_embedding, (h, w), method=self.pos_interp, num_prefix=t.num_prefix)
        return tokens + pos.to(tokens.dtype), (h, w)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """:meth:`patch_tokens` after ln_pre: (B, P + h*w, width), (h, w)."""
        tokens, grid = self.patch_tokens(x)
        return self.ln(self.tower.ln_pre, tokens), grid

    def attention(self, blk: ViTBlock, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                  return_attn: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """A block's standard attention on (B, N, width) tokens (its ``ln_1`` applied here): (B, N, width), and with
        ``return_attn`` the (B, heads, N, N) probabilities (computed explicitly instead of fused)."""
        q, k, v = self.qkv(blk, self.ln(blk.ln_1, x), rope)
        if not return_attn:
            return self.out(blk, F.scaled_dot_product_attention(q, k, v))
        attn = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), -1)
        return self.out(blk, attn @ v), attn

    def block(self, blk: ViTBlock, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> torch.Tensor:
        """A standard pre-norm block."""
        x = x + blk.ls_1(self.attention(blk, x, rope))
        return x + blk.ls_2(self.mlp(blk, self.ln(blk.ln_2, x)))

    def collect(self, index: int, x: torch.Tensor, grid: tuple[int, int]) -> list[torch.Tensor]:
        """[the (B, width, h, w) map of block ``index``'s output ``x``] if it is an ``out_indices`` block, else []."""
        return [tokens_to_map(x, grid)] if index in self.out_indices else []

    def trunk(self, images: torch.Tensor, *, stop: int | None = None, keep_outputs: bool = False,
              attentions: Sequence[int] = ()) -> Trunk:
        """The method's embedding (:meth:`OVDenseMethod.embed`, :meth:`embed` unless it has its own), then the standard
        blocks before block ``stop`` (None: all; negative: from the end).

        Args:
            images: (B, 3, H, W) normalised images.
            stop: index of the first block not run.
            keep_outputs: also return every run block's output tokens (B, P + h*w, width).
            attentions: blocks whose attention probabilities are also returned.
        """
        x, grid = self.method.embed(self, images)
        rope = self.tower.rope(*grid, device=x.device)
        blocks = self.tower.blocks[:stop]
        missing = [i for i in attentions if not 0 <= i < len(blocks)]
        if missing:
            raise ValueError(f'attentions of blocks {missing} asked for; the trunk runs blocks 0..{len(blocks) - 1}')
        outputs, inter, attns = [], [], []
        for i, blk in enumerate(blocks):
            if i in attentions:
                a, attn = self.attention(blk, x, rope, return_attn=True)
                attns.append(attn)
                x = x + blk.ls_1(a)
                x = x + blk.ls_2(self.mlp(blk, self.ln(blk.ln_2, x)))
            else:
                x = self.block(blk, x, rope)
            inter += self.collect(i, x, grid)
            if keep_outputs:
                outputs.append(x)
        return Trunk(x, grid, rope, outputs, inter, attns)

    # ----------------------------------------------------------------- outputs
    def forward_tokens(self, x: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        """Run the method on (B, 3, H, W) normalised images (``text``: (Q, D) query embeddings, for methods that
        need the vocabulary)."""
        if self.method.needs_text and text is None:
            raise ValueError(f'the dense method {type(self.method).__name__} needs the vocabulary: pass text=(Q, D) '
                             'query embeddings')
        return self.method(self, x, text=text)

    def dense_features(self, x: torch.Tensor, *, normalize: bool = False,
                       text: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D, h, w) per-patch embeddings in the text space (L2-normalised over D if asked)."""
        out = self.forward_tokens(x, text=text)
        feats = tokens_to_map(out.tokens, out.grid)
        return F.normalize(feats, dim=1) if normalize else feats

    def forward(self, x: torch.Tensor, *, text: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(intermediates..., dense) — the out_indices maps (B, width, h, w), then the dense
        embedding map (B, D, h, w)."""
        out = self.forward_tokens(x, text=text)
        return (*out.intermediates, tokens_to_map(out.tokens, out.grid))


def _refuse_renamed(method: Any, renamed: dict[str, Any]) -> None:
    """Answer the pre-method keywords (``mode=``, ``naclip_std=``, ``proxy*=``, ``reference_quirks=``) and a method
    given as a name with the new form."""
    mode = method if isinstance(method, str) else renamed.pop('mode', None)
    old = {k: renamed.pop(k) for k in ('naclip_std', 'proxy', 'proxy_beta', 'proxy_gamma', 'reference_quirks')
           if k in renamed}
    if renamed:
        raise TypeError(f'OVCLIPViT got unexpected keyword arguments {sorted(renamed)}')
    if mode is None and not old:
        return
    methods = registered_methods()
    cls = methods.get(mode)
    hint = f"method=dict(type='{cls.__name__}', ...)" if cls else 'method=dict(type=...)'
    raise ValueError(f'OVCLIPViT: mode={mode!r} and the method keywords {sorted(old)} were replaced by {hint} '
                     f'(the method\'s own knobs go in that dict: std, proxy, beta, gamma, reference_quirks); '
                     f'registered methods: {sorted(c.__name__ for c in methods.values())}')
