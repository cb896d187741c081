"""NACLIP (Hajimiri et al., WACV 2025): key-key attention with a Gaussian neighbourhood, no residual, no FFN."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...registry import register
from .base import OVDenseMethod

__all__ = ['OVNACLIP', 'neighbourhood_bias']


def neighbourhood_bias(h: int, w: int, std: float, *, device: torch.device | None = None,
                       num_prefix: int = 1) -> torch.Tensor:
    """NACLIP's Omega: (P + h*w, P + h*w), exp(-|p - q|^2 / (2 std^2)) between patches, 0 on the P = ``num_prefix``
    prefix (CLS) rows/columns."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()], 1)
    omega = torch.exp(-torch.cdist(coords, coords).pow(2) / (2 * std ** 2))
    return F.pad(omega, (num_prefix, 0, num_prefix, 0))


@register('MODELS')
class OVNACLIP(OVDenseMethod):
    """Last block: ``out_proj(softmax(k k^T / sqrt(d) + Omega) v)``, Omega a Gaussian of the patch distance
    (``std`` in patches); residual and FFN dropped.

    Args:
        std: the Gaussian's standard deviation in patches (NACLIP: 5).
    """

    name = 'naclip'

    def __init__(self, std: float = 5.0) -> None:
        super().__init__()
        if not std > 0:
            raise ValueError(f'std must be positive, got {std}')
        self.std = float(std)

    def last_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int], rope: Any = None) -> torch.Tensor:
        _, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        omega = neighbourhood_bias(*grid, self.std, device=x.device, num_prefix=vit.tower.num_prefix).to(x.dtype)
        return vit.out(blk, F.scaled_dot_product_attention(k, k, v, attn_mask=omega))  # Omega added to the scores

    def extra_repr(self) -> str:
        return f'{self.name}, std={self.std}'
