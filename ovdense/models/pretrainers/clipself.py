"""CLIPSelf: a CLIP ViT distils its own image-crop embeddings into its dense feature map."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torchvision.ops import roi_align

from ...clip import CLIPModel, build_clip
from ...registry import register
from ..backbones.clip_vit import OVCLIPViT
from ..losses import DistillBatch, build_distill_loss
from ..text import ClassEmbeddings, TextSideMixin, build_text_encoder

REGION_POOLS = ('roi_align', 'mask', 'mask_attn')
REGION_PATHS = ('roi', 'mask', 'crop')


def roi_features(dense: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, D) RoIAlign (1x1 output, aligned, adaptive sampling) of a (B, D, h, w) map over boxes given
    normalised x0, y0, x1, y1 per image (list of (n_i, 4)), as CLIPSelf's ``encode_pseudo_boxes`` v2."""
    h, w = dense.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=dense.dtype, device=dense.device)
    rois = [b.to(dense) * scale for b in boxes]
    return roi_align(dense, rois, output_size=(1, 1), spatial_scale=1.0, sampling_ratio=-1, aligned=True).flatten(1)


def box_masks(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, h, w) bool masks on the patch grid of normalised boxes: cells [y0, y1) x [x0, x1) of the
    truncated scaled corners (CLIPSelf's ``_generate_masks_per_image``; a box thinner than a cell is empty)."""
    scaled = (boxes * torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)).long()
    x0, y0, x1, y1 = (c.view(-1, 1, 1) for c in scaled.unbind(-1))
    ys = torch.arange(h, device=boxes.device).view(1, h, 1)
    xs = torch.arange(w, device=boxes.device).view(1, 1, w)
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def mask_attn_features(vit: OVCLIPViT, images: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, D) CLIPSelf's mask-attention pooling (``mask_attn_pool``, extract type v1).

    One extra query token per mask, initialised as the CLS token, goes through every (standard) block
    attending only to CLS and the patches inside its mask; nothing attends to the query tokens, so the
    image tokens are unchanged. Its output after ``ln_post`` and the projection is the region feature.

    Args:
        vit: the dense backbone (its blocks, layer norms and projection are used).
        images: (B, 3, H, W) normalised images.
        masks: per image, (n_i, h, w) bool masks on the patch grid.
    """
    t = vit.tower
    x, (h, w) = vit.embed(images)
    B, L, C = x.shape
    nq = max(len(m) for m in masks)
    allowed_q = torch.ones(B, nq, L, dtype=torch.bool, device=x.device)
    for b, m in enumerate(masks):
        allowed_q[b, :len(m), 1:] = m.flatten(1).to(x.device)
    allowed = torch.ones(B, nq + L, nq + L, dtype=torch.bool, device=x.device)
    allowed[:, :, :nq] = False  # nobody attends to the query tokens
    allowed[:, :nq, nq:] = allowed_q
    allowed = allowed[:, None]
    x = torch.cat([x[:, :1].expand(B, nq, C), x], 1)
    h, w = masks[0].shape[-2:]
    rope = t.rope(h, w, device=x.device)
    for blk in t.blocks:
        q, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        x = x + blk.ls_1(vit.out(blk, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)))
        x = x + blk.ls_2(vit.mlp(blk, vit.ln(blk.ln_2, x)))
    feats = vit.project(x[:, :nq])
    return torch.cat([feats[b, :len(m)] for b, m in enumerate(masks)])


def mask_features(dense: torch.Tensor, masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, D) mean of the (already normalised) dense tokens inside each mask, L2-normalised, as
    CLIPSelf's ``encode_masks(mask_attn=False)``. ``dense`` (B, D, h, w), masks per image (n_i, h, w)."""
    out = []
    for feats, m in zip(dense, masks):
        m = m.to(feats.dtype).flatten(1)  # (n, hw)
        out.append(m @ feats.flatten(1).t() / (m.sum(1, keepdim=True) + 1e-12))
    return F.normalize(torch.cat(out), dim=-1)


@register('MODELS')
class OVCLIPSelf(TextSideMixin, BaseModel):
    """CLIPSelf self-distillation of a CLIP ViT, and region classification for its evaluation.

    Student: the dense backbone (:class:`OVCLIPViT`, trainable). Teacher: a frozen copy of the
    starting weights, encoding image crops of the regions at its native size. Loss:
    ``1 - cos(student region feature, teacher crop embedding)`` averaged over all regions of the
    global batch (so N processes give the gradients of one process with the same global batch).

    Args:
        clip: keyword arguments of :func:`ovdense.clip.build_clip` (both towers are built from it).
        method: the student's dense method config (:mod:`ovdense.models.methods`; reference:
            ``dict(type='OVMaskCLIP')``, the value path with residual + FFN).
        pos_interp: student position-embedding interpolation (reference: ``'bicubic'`` by size).
        region_pool: student region features of the boxes: ``'roi_align'`` on the normalised dense
            map (reference v2), ``'mask'`` (mean of the normalised tokens in the box mask) or
            ``'mask_attn'`` (reference v1, :func:`mask_attn_features`).
        train_blocks: train every block (None, the reference) or only the last N blocks (+ ln_post,
            proj unless ``train_head=False``), for large models; the stem (patch embedding, CLS, positions) then
            stays frozen.
        train_head: with ``train_blocks``, also train ``ln_post`` and the projection (open_clip's lock groups);
            False as EVA-CLIP's ``lock`` (CLIPSelf's and DeCLIP's EVA-02 recipes).
        normalize_dense: L2-normalise the dense map before region pooling (CLIPSelf); DeCLIP pools the raw map
            (the region features are normalised after pooling either way).
        alpha: weight of the student in the exported weight-space ensemble
            ``alpha * student + (1 - alpha) * teacher`` (reference 0.7 for B, 0.95 for L).
        text_encoder: :class:`~ovdense.models.text.OVTextEncoder` config: the classes of region
            classification (``mode='predict'``), embedded with the student's (frozen) text tower.
        losses: the distillation losses summed (:mod:`ovdense.models.losses`, each with its ``weight``); CLIPSelf:
            ``[dict(type='OVRegionCosineLoss')]``; DeCLIP adds ``dict(type='OVContextLoss', vfm=..., weight=0.1)``
            with ``method=dict(type='OVDeCLIP')``.

    The parameters the student's method never reaches (DeCLIP: the last block's FFN) are frozen.
        data_preprocessor: mmengine data preprocessor config (images arrive normalised).
    """

    training_free = True  # region classification needs the CLIP weights only

    def __init__(self, clip: dict, method: dict | None = None, *, pos_interp: str = 'bicubic',
                 region_pool: str = 'roi_align', train_blocks: int | None = None, train_head: bool = True,
                 normalize_dense: bool = True, alpha: float = 0.7,
                 text_encoder: dict | None = None, losses: Sequence[dict] | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='BaseDataPreprocessor'),
                         init_cfg=init_cfg)
        if region_pool not in REGION_POOLS:
            raise ValueError(f"unknown region_pool '{region_pool}'; valid: {list(REGION_POOLS)}")
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        self.clip_cfg = dict(clip)
        self.student = OVCLIPViT(build_clip(**clip), method or dict(type='OVMaskCLIP'), pos_interp=pos_interp, frozen=False)
        self.student.tower.require_cls(f"CLIPSelf's region queries are copies of the CLS token "
                                       f"('{self.student.clip.name}')")
        self.teacher: CLIPModel = build_clip(**clip)
        self.teacher.requires_grad_(False)
        self.region_pool = region_pool
        self.normalize_dense = normalize_dense
        self.alpha = alpha
        self.text_encoder = build_text_encoder(text_encoder)
        self.losses = nn.ModuleList(build_distill_loss(c) for c in (losses or [dict(type='OVRegionCosineLoss')]))
        names = [loss.name for loss in self.losses]
        if not names or len(set(names)) != len(names):
            raise ValueError(f'losses must be at least one, each of another kind; got {names}')
        self._freeze(train_blocks, train_head)

    @property
    def text_clip(self) -> CLIPModel:
        return self.student.clip  # its text tower is frozen: the teacher's, too

    def _freeze(self, train_blocks: int | None, train_head: bool) -> None:
        clip = self.student.clip
        clip.lock_text()  # the text tower is not distilled
        if train_blocks is not None:
            n = len(self.student.tower.blocks)
            if not 1 <= train_blocks <= n:
                raise ValueError(f'train_blocks must be in 1..{n} (or None for all), got {train_blocks}')
            clip.lock_vision(unlocked_blocks=train_blocks, head=train_head)
        for p in self.student.method.unused_parameters(self.student):
            p.requires_grad_(False)

    def init_weights(self) -> None:
        """Load the CLIP weights into the student, and copy them into the teacher (once)."""
        if self._is_init:
            return
        self.student.init_weights()
        self.teacher.load_state_dict(self.student.clip.state_dict())  # marks the teacher loaded too
        for loss in self.losses:
            if hasattr(loss, 'init_weights'):
                loss.init_weights()  # a loss's own models (DeCLIP's VFM)
        self._is_init = True

    def train(self, mode: bool = True) -> 'OVCLIPSelf':
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------------ features
    def region_features(self, images: torch.Tensor, dense: torch.Tensor | None,
                        boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, D) student features of normalised boxes (per image (n_i, 4)), from the dense map (B, D, h, w) of
        ``images`` (normalised if ``normalize_dense``; computed here when None)."""
        if self.region_pool == 'mask_attn':
            p = self.student.patch_size
            h, w = images.shape[-2] // p, images.shape[-1] // p
            return mask_attn_features(self.student, images, [box_masks(b.to(images), h, w) for b in boxes])
        if dense is None:
            dense = self.student.dense_features(images, normalize=self.normalize_dense)
        if self.region_pool == 'roi_align':
            return roi_features(dense, boxes)
        h, w = dense.shape[-2:]
        return mask_features(dense, [box_masks(b.to(dense), h, w) for b in boxes])

    def forward(self, inputs: torch.Tensor | list[torch.Tensor], data_samples: list[dict] | None = None,
                mode: str = 'loss') -> Any:
        """Modes: ``'loss'`` (``loss_cosine``; ``cos_dissim``, its global-batch mean, for logging), ``'predict'`` (region classification, one dict
        per image), ``'tensor'`` (the normalised student dense map (B, D, h, w))."""
        images = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        data_samples = [s.to_dict() if isinstance(s, BaseDataElement) else s for s in data_samples or []]
        if mode == 'loss':
            return self._loss(images, data_samples)
        if mode not in ('predict', 'tensor'):
            raise ValueError(f"unknown mode '{mode}'; valid: ['loss', 'predict', 'tensor']")
        if mode == 'tensor':
            return self.student.dense_features(images, normalize=True)
        return self._predict(self.student.dense_features(images, normalize=self.normalize_dense), data_samples)

    def _batch_regions(self, batch: DistillBatch) -> torch.Tensor:
        """(N, D) region features of a distillation batch, pooled from its (shared) student forward."""
        if self.region_pool == 'mask_attn':
            return self.region_features(batch.images, None, batch.boxes)
        out = batch.tokens()
        dense = self.student.to_map(out.tokens, out.grid)
        return self.region_features(batch.images, F.normalize(dense, dim=1) if self.normalize_dense else dense,
                                    batch.boxes)

    def _loss(self, images: torch.Tensor, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = DistillBatch(images=images, boxes=[s['boxes'] for s in samples],
                             crops=torch.cat([s['crops'] for s in samples]).to(images), student=self.student,
                             teacher=self.teacher, region_features=self._batch_regions, samples=samples)
        out = {}
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        for loss in self.losses:
            total, count = loss(batch)
            stats = torch.stack([total.detach(), count.to(total)])
            if world > 1:
                dist.all_reduce(stats)  # the loss sum and item count of the global batch
            count = stats[1].clamp(min=1)
            # DDP averages gradients over processes: total * world / count gives the gradient of the global-batch
            # mean; the logged value (not optimised) is that global mean itself
            out[f'loss_{loss.name}'] = loss.weight * total * world / count
            out[loss.log_name or f'{loss.name}_mean'] = stats[0] / count
        return out

    # ---------------------------------------------------------- classification
    @staticmethod
    def _classify(feats: torch.Tensor, text: ClassEmbeddings) -> torch.Tensor:
        """(N, C) class scores: cosine with the class embeddings, synonyms reduced by their rule."""
        return text.reduce(F.normalize(feats.float(), dim=-1) @ text.queries.to(feats.device).t(), dim=-1)

    @torch.no_grad()
    def _predict(self, dense: torch.Tensor, samples: list[dict]) -> list[dict]:
        text = self.class_embeddings()
        roi = roi_features(dense, [s['boxes'] for s in samples])
        msk = mask_features(F.normalize(dense, dim=1), [s['masks'] for s in samples])
        crops = torch.cat([s['crops'] for s in samples]).to(dense)
        crop = self.teacher.encode_image(crops) if len(crops) else roi.new_zeros(0, roi.shape[1])
        scores = {k: self._classify(v, text) for k, v in (('roi', roi), ('mask', msk), ('crop', crop))}
        out, start = [], 0
        for s in samples:
            n = len(s['boxes'])
            out.append(dict(img_id=s['img_id'], labels=s['labels'].cpu(),
                            **{f'scores_{k}': v[start:start + n].cpu() for k, v in scores.items()}))
            start += n
        return out

    # ------------------------------------------------------------------ export
    def ensemble_state_dict(self, alpha: float | None = None) -> dict[str, torch.Tensor]:
        """``alpha * student + (1 - alpha) * teacher`` of every floating-point CLIP weight."""
        a = self.alpha if alpha is None else alpha
        s, t = self.student.clip.model.state_dict(), self.teacher.model.state_dict()
        return {k: (a * v + (1 - a) * t[k]) if v.is_floating_point() else v for k, v in s.items()}

    def export(self, out_dir: str | os.PathLike, name: str, *, dtype: torch.dtype | None = None,
               weights_format: str | None = None) -> tuple[Path, Path]:
        """Write the weight-space ensemble as ``name.json`` + ``name.safetensors`` (cast to ``dtype`` when given),
        in the format of the CLIP file loaded (open_clip's or EVA-CLIP's names) or ``weights_format``."""
        return self.student.clip.save(out_dir, name, state_dict=self.ensemble_state_dict(), dtype=dtype,
                                      weights_format=weights_format)
