"""ProxyCLIP (Lan et al., ECCV 2024): the last block attends by a vision foundation model's patch affinity."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...clip import build_vfm
from ...clip.vfm import IMAGENET_MEAN, IMAGENET_STD
from ...registry import register
from .base import DenseTokens, OVDenseMethod

__all__ = ['OVProxyCLIP']


@register('MODELS')
class OVProxyCLIP(OVDenseMethod):
    """A proxy model sees the image, re-normalised from the CLIP's input statistics to ImageNet's; its patch
    features ``E`` (normalised) give ``S = E^T E``, ``A = (S - beta * mean(S)) * gamma`` with negatives masked,
    ``P = softmax(A)``, one matrix for all heads. The last block's values (no CLS) are bilinearly resized to the
    proxy's grid and ``out_proj(P V)`` is the output, on the proxy's grid, without residual, FFN or CLS token.

    ``mean(S)`` is per image (ProxyCLIP takes it over the whole batch, which couples the windows of a batch, and
    reads both grid sides from the height: ``reference_quirks=True`` reproduces both).

    Args:
        proxy: a :class:`ovdense.clip.VFM` or :func:`ovdense.clip.build_vfm` kwargs (``model_name``,
            ``checkpoint``, ``model_kwargs`` or ``config_file``), or ``'self'``: the CLIP's own patch tokens
            entering its last block.
        beta: ProxyCLIP's beta (1.2).
        gamma: ProxyCLIP's gamma (3.0).
        reference_quirks: the reference's batch-wide similarity mean and height-only grid.
    """

    name = 'proxyclip'

    def __init__(self, proxy: Any, *, beta: float = 1.2, gamma: float = 3.0, reference_quirks: bool = False) -> None:
        super().__init__()
        if proxy is None:
            raise ValueError("OVProxyCLIP needs proxy=dict(model_name=..., checkpoint=...) or proxy='self'")
        self.proxy_self = proxy == 'self'
        self.proxy = None if self.proxy_self else build_vfm(**proxy) if isinstance(proxy, dict) else proxy
        self.beta, self.gamma = float(beta), float(gamma)
        self.reference_quirks = reference_quirks

    def init_weights(self) -> None:
        if self.proxy is not None and self.proxy.weights_pending:
            self.proxy.load_weights()

    @staticmethod
    def proxy_input(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
        """Images normalised with the CLIP's ``mean`` / ``std`` -> ImageNet-normalised, with ProxyCLIP's four
        float32 operations."""
        def c(v):
            return torch.tensor(v, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return ((x.float() * c(std) + c(mean)) - c(IMAGENET_MEAN)) / c(IMAGENET_STD)

    def affinity(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, M, M) ``A = (S - beta * mean(S)) * gamma`` from patch features (B, C, I, J), M = I * J; the
        attention masks its negative entries (a hard threshold: entries within float rounding of 0 may fall on
        either side on another CPU's kernels, see :mod:`ovdense.testing.parity`)."""
        e = F.normalize(feats.flatten(2), dim=1)
        sim = torch.einsum('bcm,bcn->bmn', e, e)
        mean = sim.mean() if self.reference_quirks else sim.mean((1, 2), keepdim=True)
        return (sim - mean * self.beta) * self.gamma

    def attention(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, M, M) proxy attention ``softmax(A)`` over the entries with ``A >= 0``, from patch features
        (B, C, I, J)."""
        sim = self.affinity(feats)
        return torch.softmax(sim.masked_fill(sim < 0, float('-inf')), -1)

    def proxy_block(self, vit, blk, x: torch.Tensor, grid: tuple[int, int],
                    feats: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The last block: (B, I*J, width) from tokens (B, P + h*w, width) and proxy features (B, C, I, J), and
        its grid (I, J)."""
        _, _, v = vit.qkv(blk, vit.ln(blk.ln_1, x))
        B, nh, _, d = v.shape
        h, w = grid
        I, J = feats.shape[-2:]
        if self.reference_quirks:  # the reference: CLIP grid (w, h), VFM grid (H // p) x (H // p)
            h, w = w, h
            I = J = feats.shape[-2]
            feats = feats.flatten(2).transpose(1, 2).reshape(B, I, J, -1).permute(0, 3, 1, 2)
        grid_v = v[:, :, -h * w:].reshape(B * nh, h, w, d).permute(0, 3, 1, 2)
        grid_v = F.interpolate(grid_v, size=(I, J), mode='bilinear', align_corners=False)
        grid_v = grid_v.permute(0, 2, 3, 1).reshape(B, nh, I * J, d)
        return vit.out(blk, self.attention(feats).to(v.dtype)[:, None] @ grid_v), (I, J)

    def forward(self, vit, images: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        feats = None
        if self.proxy is not None:
            with torch.no_grad():
                feats = self.proxy.patch_features(self.proxy_input(images, *vit.clip.image_stats))
        trunk = vit.trunk(images, stop=-1)
        x, (h, w) = trunk.tokens, trunk.grid
        if feats is None:  # the CLIP as its own proxy: the patch tokens entering its last block
            feats = vit.to_map(x.detach(), (h, w))
        x, grid = self.proxy_block(vit, vit.tower.blocks[-1], x, (h, w), feats)
        return DenseTokens(vit.project(x), grid, trunk.intermediates + vit.collect(len(vit.tower.blocks) - 1, x, grid))

    def extra_repr(self) -> str:
        return f"{self.name}, proxy={'self' if self.proxy_self else type(self.proxy).__name__}, beta={self.beta}, " \
               f'gamma={self.gamma}, reference_quirks={self.reference_quirks}'
