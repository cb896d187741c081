"""ResCLIP (Yang et al., CVPR 2025, yvhangyang/ResCLIP): residual cross-correlation self-attention (RCS) and semantic
feedback refinement (SFR) on NACLIP's last block."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...registry import register
from ..utils.pamr import PAMR
from .base import DenseTokens, OVDenseMethod
from .naclip import neighbourhood_bias

__all__ = ['OVResCLIP']


def patch_vote(labels: torch.Tensor, grid: tuple[int, int], patch: int, num_labels: int) -> torch.Tensor:
    """(B, h, w): each patch's most frequent pixel label of (B, H, W) ``labels`` (ties: the smallest label)."""
    h, w = grid
    B = labels.shape[0]
    blocks = labels[:, :h * patch, :w * patch].reshape(B, h, patch, w, patch).permute(0, 1, 3, 2, 4).flatten(3)
    cell = torch.arange(B * h * w, device=labels.device).view(B, h, w, 1) * num_labels
    counts = torch.bincount((cell + blocks).flatten(), minlength=B * h * w * num_labels)
    return counts.view(B, h, w, num_labels).argmax(-1)  # argmax: the first (smallest) of equal counts


def _grid_steps(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) (row, column) of each patch of an h x w grid and the (n, n) Chebyshev steps between them."""
    idx = torch.arange(h * w, device=device)
    coords = torch.stack([idx // w, idx % w], -1)
    return coords, (coords[:, None] - coords[None]).abs().amax(-1)


def valid_paths(labels: torch.Tensor, *, reference_quirks: bool = False) -> torch.Tensor:
    """(n, n) bool for one image's (h, w) patch labels: the straight path from patch p to patch q (points rounded,
    half to even, one per Chebyshev step) stays on p's label. ``reference_quirks``: the reference's check, which
    samples every path at ``T + 1`` points (T the largest number of steps) and reads the first ``steps + 1``."""
    h, w = labels.shape
    n = h * w
    L = labels.flatten()
    start, steps = _grid_steps(h, w, L.device)
    T = int(steps.max())
    t_ref = torch.linspace(0, 1, T + 1, device=L.device)
    valid = torch.ones(n, n, dtype=torch.bool, device=L.device)
    for s in range(T + 1):
        t = t_ref[s] if reference_quirks else (s / steps.clamp_min(1)).clamp_max(1)[..., None]
        pts = (start[:, None] * (1 - t) + start[None] * t).round().long()  # (n, n, 2)
        valid &= (L[pts[..., 0] * w + pts[..., 1]] == L[:, None]) | (s > steps)
    return valid


def feedback_matrix(labels: torch.Tensor, *, std: float, delete_same_entity: bool = True,
                    reference_quirks: bool = False) -> torch.Tensor:
    """SFR's (n, n) attention prior from one image's (h, w) patch labels, n = h * w.

    ``M[p, q] = [L_p == L_q]``; with ``delete_same_entity``, pairs not joined by a straight path of their own label
    are decayed by ``exp(-steps / T)`` (Chebyshev steps, T the largest); then each row is blurred by a Gaussian of
    ``std`` patches along the grid row, ReLU, and divided by its sum (+1e-8). The reference checks only the first
    ``steps / T`` of each path and blurs along the flattened index (across grid rows): ``reference_quirks``.
    """
    h, w = labels.shape
    n = h * w
    L = labels.flatten()
    M = (L[:, None] == L[None]).float()
    if delete_same_entity and n > 1:
        steps = _grid_steps(h, w, L.device)[1]
        M = torch.where(valid_paths(labels, reference_quirks=reference_quirks), M, M * torch.exp(-steps / steps.max()))
    size = min(n if reference_quirks else w, int(6 * std + 1))
    size += 1 - size % 2
    x = torch.arange(size, device=L.device) - size // 2
    kernel = torch.exp(-(x ** 2) / (2 * std ** 2))
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    if reference_quirks:
        M = F.conv1d(M[:, None], kernel, padding=size // 2)[:, 0]
    else:
        M = F.conv1d(M.reshape(n * h, 1, w), kernel, padding=size // 2).view(n, n)
    M = F.relu(M)
    return M / (M.sum(1, keepdim=True) + 1e-8)


@register('MODELS')
class OVResCLIP(OVDenseMethod):
    """ResCLIP's last block (the reference's main setting: NACLIP's key-key attention with the Gaussian window,
    no residual, no FFN), with

    * RCS: the attention ``P`` becomes ``tau_r * ((1 - lambda_r) * P + lambda_r * mean(A_i))``, the mean of the
      standard attention maps of ``rcs_blocks``;
    * SFR: a first pass (RCS, no SFR) segments the window with the vocabulary: patch logits upsampled to the input,
      PAMR, ``softmax(temp_logit_scale * .)`` over the queries, label = the top query where its probability reaches
      ``temp_thd`` (else 0), each patch takes its pixels' most frequent label; :func:`feedback_matrix` turns the patch
      labels into a prior ``S`` and the final logits are ``tau_s * ((1 - lambda_s) * k k^T / sqrt(d) + lambda_s *
      S / max S) + Omega``.

    The vocabulary's query embeddings come with every forward (``needs_text``). Labels are query indices, as the
    reference (synonyms of one class are different labels). Differences from the reference
    (``reference_quirks=True`` reproduces them): its ``S / max S`` is rounded to float16 in the float32 model, its path
    check reads only the first ``steps / T`` of each path, its blur runs along the flattened patch index (across grid
    rows), and it runs one image only (one SFR per batch); here every image of a batch has its own.

    Args:
        std: NACLIP's Gaussian window, in patches (5).
        rcs_blocks: blocks whose attention RCS averages (reference: 5..8, blocks 6-9 of 12).
        rcs_weights: (tau_r, lambda_r) (2.0, 0.3).
        sfr_weights: (tau_s, lambda_s) (2.2, 0.7).
        temp_thd: probability below which a pixel of the first pass gets label 0 (0.5).
        temp_logit_scale: the first pass's softmax scale (the segmentor's, 40).
        pamr: the first pass's PAMR (``num_iter``, ``dilations``), or None.
        delete_same_entity: decay same-label pairs without a path of their label (True in every reference config).
        use_rcs: apply RCS.
        use_sfr: apply SFR.
        chunk_queries: queries per chunk of the first pass at input resolution (memory: chunk x H x W floats).
        reference_quirks: the reference's float16 rounding, partial path check and flattened blur.
    """

    name = 'resclip'
    needs_text = True

    def __init__(self, *, std: float = 5.0, rcs_blocks: Sequence[int] = (5, 6, 7, 8),
                 rcs_weights: Sequence[float] = (2.0, 0.3), sfr_weights: Sequence[float] = (2.2, 0.7),
                 temp_thd: float = 0.5, temp_logit_scale: float = 40.0,
                 pamr: dict | None = dict(num_iter=10, dilations=(8, 16)), delete_same_entity: bool = True,
                 use_rcs: bool = True, use_sfr: bool = True, chunk_queries: int = 32,
                 reference_quirks: bool = False) -> None:
        super().__init__()
        if not std > 0 or chunk_queries < 1 or len(rcs_weights) != 2 or len(sfr_weights) != 2:
            raise ValueError(f'need std > 0, chunk_queries >= 1, rcs_weights / sfr_weights = (tau, lambda); got '
                             f'{std}, {chunk_queries}, {rcs_weights}, {sfr_weights}')
        for k, v in dict(use_rcs=use_rcs, use_sfr=use_sfr, delete_same_entity=delete_same_entity).items():
            if not isinstance(v, bool):  # the reference's (True,) tuples could not be switched off
                raise ValueError(f'{k} must be True or False, got {v!r}')
        self.std, self.rcs_blocks = float(std), tuple(rcs_blocks)
        self.rcs_weights, self.sfr_weights = tuple(map(float, rcs_weights)), tuple(map(float, sfr_weights))
        self.temp_thd, self.temp_logit_scale = float(temp_thd), float(temp_logit_scale)
        self.pamr = PAMR(**pamr) if pamr else None
        self.delete_same_entity, self.use_rcs, self.use_sfr = delete_same_entity, use_rcs, use_sfr
        self.chunk_queries = chunk_queries
        self.reference_quirks = reference_quirks
        self.needs_text = use_sfr

    def check(self, vit) -> None:
        n = len(vit.tower.blocks) - 1
        if self.use_rcs and any(not 0 <= i < n for i in self.rcs_blocks):
            raise ValueError(f'OVResCLIP: rcs_blocks {list(self.rcs_blocks)} must be among blocks 0..{n - 1} before the '
                             f'last of this {n + 1}-block CLIP (the default is the reference\'s for 12 blocks)')
        if vit.patch_padding != 'drop':
            raise ValueError("OVResCLIP votes patch labels over whole patches: use the backbone's patch_padding='drop'")

    def attention_logits(self, kk: torch.Tensor, omega: torch.Tensor, sfr: torch.Tensor | None) -> torch.Tensor:
        """The last block's attention logits from the key-key logits (B, heads, N, N), Omega (N, N) and the SFR prior
        S / max S (B, 1, N, N) or None: ``tau_s * ((1 - lambda_s) * kk + lambda_s * S) + Omega``."""
        if sfr is not None:
            tau, lam = self.sfr_weights
            kk = tau * ((1 - lam) * kk + (lam * sfr.half() if self.reference_quirks else lam * sfr))
        return kk + omega

    def _mix_rcs(self, attn: torch.Tensor, rcs: torch.Tensor | None) -> torch.Tensor:
        if rcs is None:
            return attn
        tau, lam = self.rcs_weights
        return tau * ((1 - lam) * attn + lam * rcs)

    def temp_labels(self, images: torch.Tensor, logits: torch.Tensor, patch: int) -> torch.Tensor:
        """(B, h, w) patch labels of the first pass from its (B, Q, h, w) cosine logits and the (B, 3, H, W) input."""
        prob, arg = self.temp_pixels(images, logits)
        return patch_vote(arg.masked_fill(prob < self.temp_thd, 0), logits.shape[-2:], patch, logits.shape[1])

    def temp_pixels(self, images: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W) top probability and top query of the first pass at input resolution (upsampled, PAMR,
        ``softmax(temp_logit_scale * .)`` over the queries), in query chunks of bounded memory."""
        Q = logits.shape[1]
        aff = self.pamr.affinity(images) if self.pamr is not None else None
        best = lse = arg = None
        for q0 in range(0, Q, self.chunk_queries):  # running max / log-sum-exp over query chunks
            z = F.interpolate(logits[:, q0:q0 + self.chunk_queries], size=images.shape[-2:], mode='bilinear',
                              align_corners=False)
            if aff is not None:
                z = self.pamr.refine(z, aff)
            z = z * self.temp_logit_scale
            m, a = z.max(1)
            c_lse = torch.logsumexp(z, 1)
            if best is None:
                best, arg, lse = m, a, c_lse
            else:
                arg = torch.where(m > best, a + q0, arg)
                best = torch.maximum(best, m)
                lse = torch.logaddexp(lse, c_lse)
        return (best - lse).exp(), arg

    def forward(self, vit, images: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        trunk = vit.trunk(images, stop=-1, attentions=self.rcs_blocks if self.use_rcs else ())
        rcs = torch.stack(trunk.attentions).mean(0) if self.use_rcs else None
        (h, w), P, blk = trunk.grid, vit.tower.num_prefix, vit.tower.blocks[-1]
        _, k, v = vit.qkv(blk, vit.ln(blk.ln_1, trunk.tokens), trunk.rope)
        kk = k @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        omega = neighbourhood_bias(h, w, self.std, device=kk.device, num_prefix=P).to(kk.dtype)
        if self.use_sfr:
            temp = self._mix_rcs(torch.softmax(self.attention_logits(kk, omega, None), -1), rcs)
            temp = vit.project(vit.out(blk, temp @ v))[:, P:]
            temp = torch.einsum('bnd,qd->bqn', F.normalize(temp, dim=-1), text.to(temp.dtype)).unflatten(2, (h, w))
            labels = self.temp_labels(images, temp, vit.patch_size)
            sfr = torch.stack([feedback_matrix(lb, std=self.std, delete_same_entity=self.delete_same_entity,
                                               reference_quirks=self.reference_quirks) for lb in labels])
            sfr = F.pad(sfr / sfr.amax((1, 2), keepdim=True), (P, 0, P, 0))[:, None]
        attn = self._mix_rcs(torch.softmax(self.attention_logits(kk, omega, sfr if self.use_sfr else None), -1), rcs)
        x = vit.out(blk, attn @ v)
        inter = trunk.intermediates + vit.collect(len(vit.tower.blocks) - 1, x, trunk.grid)
        return DenseTokens(vit.project(x), trunk.grid, inter)

    def extra_repr(self) -> str:
        return (f'{self.name}, rcs={self.use_rcs} {list(self.rcs_blocks)} {self.rcs_weights}, sfr={self.use_sfr} '
                f'{self.sfr_weights}, temp_thd={self.temp_thd}, reference_quirks={self.reference_quirks}')
