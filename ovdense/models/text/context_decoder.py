"""DenseCLIP's context decoder: text embeddings attend to the image (post-model prompting)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...registry import register


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, proj_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        B, N, C = q.shape
        M = kv.shape[1]
        h = self.heads
        q = self.q_proj(q).view(B, N, h, C // h).transpose(1, 2)
        k = self.k_proj(kv).view(B, M, h, C // h).transpose(1, 2)
        v = self.v_proj(kv).view(B, M, h, C // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, heads, dropout)
        self.cross_attn = _Attention(dim, heads, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        q = self.norm1(x)
        x = x + self.self_attn(q, q)
        x = x + self.cross_attn(self.norm2(x), mem)
        return x + self.dropout(self.mlp(self.norm3(x)))


@register('MODELS', mmdet=False)
class OVContextDecoder(BaseModule):
    """DenseCLIP's post-model prompting: text embeddings (B, K, D) attend to the visual context
    (B, N, D) (global + patch embeddings) through a small transformer decoder; returns (B, K, D)."""

    def __init__(self, visual_dim: int, *, transformer_width: int = 256, transformer_heads: int = 4,
                 transformer_layers: int = 3, dropout: float = 0.1, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.memory_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width),
                                         nn.LayerNorm(transformer_width))
        self.text_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, transformer_width))
        self.decoder = nn.ModuleList([_DecoderLayer(transformer_width, transformer_heads, dropout)
                                      for _ in range(transformer_layers)])
        self.out_proj = nn.Sequential(nn.LayerNorm(transformer_width), nn.Linear(transformer_width, visual_dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        mem = self.memory_proj(visual)
        x = self.text_proj(text)
        for layer in self.decoder:
            x = layer(x, mem)
        return self.out_proj(x)
