"""DeCLIP (Wang et al., CVPR 2025): the last block decoupled into q-q / k-k / v-v "context" attention, without
residual or FFN; its context features are what DeCLIP's VFM loss (:class:`~ovdense.models.losses.OVContextLoss`)
distils."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ...registry import register
from .base import DenseTokens, OVDenseMethod

__all__ = ['OVDeCLIP', 'decoupled_attention']

# attention -> the projections whose self-similarity it uses (also the context features DeCLIP distils)
ATTENTIONS = {'qq': ('q',), 'kk': ('k',), 'vv': ('v',), 'csa': ('q', 'k'), 'all': ('q', 'k', 'v')}
# a block's feed-forward half, in every tower's block view (open_clip, timm, EVA-02)
_FFN_FIELDS = ('ln_2', 'fc1', 'fc1_g', 'fc1_x', 'mlp_norm', 'fc2', 'ls_2')


def decoupled_attention(parts: dict[str, torch.Tensor], attention: str) -> torch.Tensor:
    """DeCLIP's attention probabilities (B, heads, N, N) from ``parts`` q, k, v (B, heads, N, d), unscaled:
    ``softmax(x xᵀ)`` for ``'qq'``, ``'kk'``, ``'vv'``; ``softmax(q qᵀ) + softmax(k kᵀ)`` for ``'csa'`` (rows sum to
    2, as the reference); ``softmax((q qᵀ + k kᵀ + v vᵀ) / 3)`` for ``'all'``."""
    sims = [parts[c] @ parts[c].transpose(-2, -1) for c in ATTENTIONS[attention]]
    if attention == 'csa':
        return sum(torch.softmax(s, -1) for s in sims)
    return torch.softmax(sum(sims) / len(sims), -1)


@register('MODELS')
class OVDeCLIP(OVDenseMethod):
    """Last block: ``ls_1(out(A v))`` of the normed tokens, ``A`` = :func:`decoupled_attention` over all tokens (CLS
    included) without the 1/sqrt(d) scale and without RoPE; no residual and no FFN (``forward_without_rcffn``). The
    method DeCLIP trains (``*_vfm_distill``) and evaluates with (the same attention without the context); its
    :class:`DenseTokens` carries ``extras['context']``: the patch tokens' q / k / v of the attention, each
    (B, heads, h*w, d), for the context loss.

    Args:
        attention: one of ``ATTENTIONS`` (reference recipes: ``'qq'``).
    """

    name = 'declip'
    trained_for = 'declip'  # on a plain CLIP the decoupled block is an ablation

    def __init__(self, *, attention: str = 'qq') -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown DeCLIP attention '{attention}'; valid: {list(ATTENTIONS)}")
        self.attention = attention

    def decoupled_block(self, vit, blk, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B, P + h*w, width) tokens entering the last block -> its output and the q, k, v it used."""
        q, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x))  # no RoPE
        parts = dict(q=q, k=k, v=v)
        attn = decoupled_attention(parts, self.attention).to(v.dtype)
        return blk.ls_1(vit.out(blk, attn @ v)), parts

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        return self.decoupled_block(vit, blk, x)[0]

    def forward(self, vit, images: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        trunk = vit.trunk(images, stop=-1)
        x, parts = self.decoupled_block(vit, vit.tower.blocks[-1], trunk.tokens)
        n = trunk.grid[0] * trunk.grid[1]
        context = tuple(parts[c][:, :, -n:] for c in ATTENTIONS[self.attention])
        inter = trunk.intermediates + vit.collect(len(vit.tower.blocks) - 1, x, trunk.grid)
        return DenseTokens(vit.project(x), trunk.grid, inter, extras=dict(context=context))

    def unused_parameters(self, vit) -> list[nn.Parameter]:
        """The last block's FFN half (norm, MLP, layer scale) and, where the tower keeps q, k, v apart (EVA-02), the
        projections the attention does not use (DeCLIP's freeze list: ``k_proj`` in ``'qq'`` mode)."""
        blk = vit.tower.blocks[-1]
        names = list(_FFN_FIELDS) + [f'{c}_proj' for c in 'qk' if c not in ATTENTIONS[self.attention]]
        params: dict[int, nn.Parameter] = {}
        for name in names:
            module = getattr(blk, name, None)
            if isinstance(module, nn.Module):
                params.update((id(p), p) for p in module.parameters())
        return list(params.values())

    def extra_repr(self) -> str:
        return f'{self.name}, attention={self.attention}'
