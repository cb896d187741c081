"""SC-CLIP (Bai et al., 2024, SuleBai/SC-CLIP): anomalous tokens repaired, self-adjusting attention, multi-level
aggregation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...registry import register
from .base import DenseTokens, OVDenseMethod

__all__ = ['OVSCCLIP']


def local_outlier_factor(x: torch.Tensor, k: int, *, reference_quirks: bool = False) -> torch.Tensor:
    """(B, N) local outlier factors of the (B, N, C) points, with ``k`` neighbours (self excluded).

    Standard LOF: Euclidean distances, reach-distance ``max(d(i, j), k-distance(j))``. ``reference_quirks``:
    SC-CLIP's ``lof_pytorch``: squared distances and the query point's own k-distance (so ``LRD_i = k / kd_i``).
    """
    knn_d, knn_i = nearest_neighbours(x, k, squared=reference_quirks)
    kdist = knn_d[..., -1]
    if reference_quirks:
        reach = torch.max(knn_d, kdist[..., None].expand_as(knn_d))
        lrd = k / torch.nan_to_num(reach.mean(-1), nan=1e-6)
    else:
        reach = torch.max(knn_d, torch.gather(kdist, 1, knn_i.flatten(1)).view_as(knn_d))
        lrd = 1 / reach.mean(-1).clamp_min(torch.finfo(x.dtype).tiny)
    return (torch.gather(lrd, 1, knn_i.flatten(1)).view_as(knn_d) / lrd[..., None]).mean(-1)


def nearest_neighbours(x: torch.Tensor, k: int, *, squared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, k) distances (squared if asked) and indices of each of the (B, N, C) points' k nearest others,
    ascending."""
    d = torch.cdist(x, x, compute_mode='donot_use_mm_for_euclid_dist')
    knn_d, knn_i = torch.topk(d ** 2 if squared else d, k + 1, largest=False)
    return knn_d[..., 1:], knn_i[..., 1:]  # the first is the point itself


def repair(maps: torch.Tensor, outliers: torch.Tensor) -> torch.Tensor:
    """SC-CLIP's ``mean_interpolation``: every outlier cell of (B, C, h, w) ``maps`` ((B, h, w) bool ``outliers``)
    takes the mean of its 8 neighbours that are inside the grid and not outliers (kept if it has none)."""
    C = maps.shape[1]
    valid = (~outliers).to(maps.dtype)[:, None]
    kernel = torch.ones(C, 1, 3, 3, dtype=maps.dtype, device=maps.device)
    kernel[:, 0, 1, 1] = 0
    total = F.conv2d(F.pad(maps * valid, (1, 1, 1, 1)), kernel, groups=C)
    count = F.conv2d(F.pad(valid, (1, 1, 1, 1)), kernel[:1])
    update = (outliers[:, None] & (count > 0)).to(maps.dtype)
    return maps * (1 - update) + total / count.clamp_min(1) * update


def aggregate(x: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """``(corr / (rowsum + 1e-6)) @ x``: (B, N, C) tokens mixed by a (B, N, N) correlation."""
    return (corr / (corr.sum(-1, keepdim=True) + 1e-6)) @ x


def thresholded_similarity(tokens: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of (B, N, C) tokens (normalised without eps, as the reference), and its copy with the
    entries below ``beta`` set to 0."""
    f = tokens / tokens.norm(dim=-1, keepdim=True)
    sim = f @ f.transpose(-2, -1)
    return sim, sim.masked_fill(sim < beta, 0.0)


@register('MODELS')
class OVSCCLIP(OVDenseMethod):
    """SC-CLIP on a CLIP ViT with ``n`` blocks (F_i = output of block i):

    1. LOF on F_{n-1}'s patch tokens; outliers (LOF above its ``1 - contamination`` quantile) are repaired in
       F_{n-1} and in F_{pre} by the mean of their valid neighbours (:func:`repair`); the CLS token leaves.
    2. S = cos(repaired F_{pre}); x1 = aggregate(repaired F_{n-1}, S thresholded at ``beta``).
    3. Block n's attention only (no residual, no FFN), on ln_1(x1): ``(softmax(3 (S - mean S)), negatives
       masked) + softmax(k k^T / sqrt(d))) / 2``, plus ``res_cls`` x the CLS of F_{n-1}.
    4. T = cos(F_{post}) thresholded at ``beta``; x3 = aggregate(x2, T).
    5. R = F_{multi_start+1} + ... + F_{multi_end}; x4 = x3 + aggregate(attention(ln_1(R's patches)) with the same S
       + ``res_cls`` x R's CLS, T); then ``ln_post`` and the projection, patch tokens only.

    Layer indices are the reference's 0-based ones into [F_1, ..., F_{n-1}] (its ViT-B/16 values by default).
    Differences from the reference (``reference_quirks=True`` reproduces them): the reference's LOF takes squared
    distances and the query point's own k-distance (standard LOF here), and it runs one image only (its outliers
    and mean similarity would be shared by a batch; here each image has its own, so batches and windows are
    independent). Non-square grids work (the reference reads the outlier rows from the number of rows and fails).

    Args:
        pre_adjust_idx: F_{pre} (reference 8: block 9).
        post_adjust_idx: F_{post} (reference 3: block 4).
        multi_start_idx: first summed block output index (reference 3).
        multi_end_idx: end (exclusive) of the summed indices (reference 10).
        beta: similarity threshold (0.4).
        res_cls: weight of the CLS token added back (0.3).
        n_neighbors: LOF neighbours (30; fewer when a window has fewer patches).
        contamination: share of tokens taken as outliers (0.05).
        attn_temperature: factor of the centred similarity (3.0).
        reference_quirks: the reference's LOF.
    """

    name = 'scclip'

    def __init__(self, *, pre_adjust_idx: int = 8, post_adjust_idx: int = 3, multi_start_idx: int = 3,
                 multi_end_idx: int = 10, beta: float = 0.4, res_cls: float = 0.3, n_neighbors: int = 30,
                 contamination: float = 0.05, attn_temperature: float = 3.0, reference_quirks: bool = False) -> None:
        super().__init__()
        if not 0 <= multi_start_idx < multi_end_idx or n_neighbors < 1 or not 0 < contamination < 1:
            raise ValueError(f'need 0 <= multi_start_idx < multi_end_idx, n_neighbors >= 1, 0 < contamination < 1; '
                             f'got {multi_start_idx}, {multi_end_idx}, {n_neighbors}, {contamination}')
        self.pre_adjust_idx, self.post_adjust_idx = pre_adjust_idx, post_adjust_idx
        self.multi_start_idx, self.multi_end_idx = multi_start_idx, multi_end_idx
        self.beta, self.res_cls, self.attn_temperature = float(beta), float(res_cls), float(attn_temperature)
        self.n_neighbors, self.contamination = n_neighbors, float(contamination)
        self.reference_quirks = reference_quirks

    def check(self, vit) -> None:
        n = len(vit.tower.blocks) - 1  # block outputs F_1..F_{n}, n = depth - 1
        used = {'pre_adjust_idx': self.pre_adjust_idx, 'post_adjust_idx': self.post_adjust_idx,
                'multi_end_idx - 1': self.multi_end_idx - 1}
        bad = {k: v for k, v in used.items() if not 0 <= v < n}
        if bad:
            raise ValueError(f'OVSCCLIP: {bad} index block outputs F_1..F_{n} of this {n + 1}-block CLIP (valid 0..'
                             f'{n - 1}); the defaults are the reference\'s for 12 blocks: set the indices for this model')

    def outliers(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N) bool: the patch tokens (B, N, C) whose LOF is above the ``1 - contamination`` quantile of their
        image."""
        k = min(self.n_neighbors, tokens.shape[1] - 1)
        lof = local_outlier_factor(tokens, k, reference_quirks=self.reference_quirks)
        return lof > torch.quantile(lof.float(), 1 - self.contamination, dim=1, keepdim=True)

    def attention(self, vit, blk, x: torch.Tensor, sim: torch.Tensor, rope) -> torch.Tensor:
        """Block ``blk``'s self-adjusting attention on (B, N, width) patch tokens (ln_1 applied here) with the
        (B, N, N) similarity ``sim``: (B, N, width)."""
        P = vit.tower.num_prefix  # q, k, v of the patches are computed with the prefix rows the tower expects
        y = vit.ln(blk.ln_1, F.pad(x, (0, 0, P, 0)))
        _, k, v = (t[:, :, P:] for t in vit.qkv(blk, y, rope))
        return vit.out(blk, self.attention_probs(sim, k) @ v)

    def attention_probs(self, sim: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, N): ``(softmax(t (S - mean S)), entries below 0 masked) + softmax(k k^T / sqrt(d))) / 2`` from
        the (B, N, N) similarity and the (B, heads, N, d) keys."""
        a = (sim - sim.mean((1, 2), keepdim=True)) * self.attn_temperature
        a = torch.softmax(a.masked_fill(a < 0, float('-inf')), -1)[:, None]
        return (a + torch.softmax(k @ k.transpose(-2, -1) * k.shape[-1] ** -0.5, -1)) / 2

    def forward(self, vit, images: torch.Tensor, *, text: torch.Tensor | None = None) -> DenseTokens:
        trunk = vit.trunk(images, stop=-1, keep_outputs=True)
        feats, grid, P = trunk.outputs, trunk.grid, vit.tower.num_prefix
        B, (h, w) = images.shape[0], grid
        last = feats[-1]
        cls = last[:, :P].sum(1, keepdim=True)  # the CLS token (0 without one)
        out = self.outliers(last[:, P:]).view(B, h, w)

        def repaired(t: torch.Tensor) -> torch.Tensor:
            return repair(vit.to_map(t, grid), out).flatten(2).transpose(1, 2)

        sim, sim_beta = thresholded_similarity(repaired(feats[self.pre_adjust_idx]), self.beta)
        blk = vit.tower.blocks[-1]
        x = self.attention(vit, blk, aggregate(repaired(last), sim_beta), sim, trunk.rope) + self.res_cls * cls
        _, post = thresholded_similarity(feats[self.post_adjust_idx][:, P:], self.beta)
        x = aggregate(x, post)
        multi = torch.zeros_like(last)
        for i in range(self.multi_start_idx, self.multi_end_idx):
            multi += feats[i]
        r = self.attention(vit, blk, multi[:, P:], sim, trunk.rope) + self.res_cls * multi[:, :P].sum(1, keepdim=True)
        x = x + aggregate(r, post)
        inter = trunk.intermediates + vit.collect(len(vit.tower.blocks) - 1, x, grid)
        return DenseTokens(vit.project(x), grid, inter)

    def extra_repr(self) -> str:
        return (f'{self.name}, pre={self.pre_adjust_idx}, post={self.post_adjust_idx}, '
                f'multi=[{self.multi_start_idx}, {self.multi_end_idx}), beta={self.beta}, '
                f'reference_quirks={self.reference_quirks}')
