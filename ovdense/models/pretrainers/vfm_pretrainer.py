"""Self-supervised pretraining of a small vision foundation model (a patch-affinity proxy for ProxyCLIP)."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from ...clip import build_vfm
from ...clip.vfm import IMAGENET_MEAN, IMAGENET_STD
from ...registry import register


class _Head(nn.Module):
    """DINO's projection head on each patch token: MLP -> L2 norm -> weight-normalised prototypes."""

    def __init__(self, dim: int, *, hidden: int, bottleneck: int, prototypes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, prototypes, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


@register('MODELS')
class OVVFMPretrainer(BaseModel):
    """Patch-level self-distillation (DINO's teacher-student recipe applied to patch tokens, as iBOT's
    patch loss, with the views' geometry giving the correspondences) for a timm ViT.

    Each sample holds two random views of a scene (:class:`~ovdense.datasets.OVSyntheticViewsDataset`)
    and where they were cut. The student's prototype distribution of every patch of one view is pulled
    towards the teacher's (an exponential moving average of the student) at the same place of the other
    view, both ways; the teacher's outputs are centred and sharpened against collapse. Patches of one
    object end up with one prototype whatever their colour, which is the affinity ProxyCLIP needs.

    Args:
        model_name: timm architecture (e.g. ``'vit_base_patch8_224.dino'``).
        model_kwargs: its size (``embed_dim``, ``depth``, ``num_heads``...).
        prototypes: number of prototypes (DINO's output dimension).
        hidden, bottleneck: head sizes.
        student_temp, teacher_temp: softmax temperatures.
        center_momentum: of the teacher-output centre.
        momentum: of the teacher's moving average.
        data_preprocessor: mmengine config (collation only: images are normalised here, ImageNet stats).
    """

    def __init__(self, model_name: str, *, model_kwargs: dict, prototypes: int = 64, hidden: int = 256,
                 bottleneck: int = 64, student_temp: float = 0.1, teacher_temp: float = 0.05,
                 center_momentum: float = 0.9, momentum: float = 0.99, data_preprocessor: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type='BaseDataPreprocessor'))
        self.model_name, self.model_kwargs = model_name, dict(model_kwargs)
        self.student = build_vfm(model_name, pretrained=False, model_kwargs=model_kwargs, frozen=False)
        self.student_head = _Head(self.student.embed_dim, hidden=hidden, bottleneck=bottleneck, prototypes=prototypes)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.student_head).requires_grad_(False)
        self.register_buffer('center', torch.zeros(prototypes))
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.center_momentum, self.momentum = center_momentum, momentum

    @staticmethod
    def _normalise(x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x.float() / 255.0 - mean) / std

    @staticmethod
    def correspondences(box_from: torch.Tensor, box_to: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the patch centres of one view fall in the other: (B, g*g, 2) in ``grid_sample``'s [-1, 1]
        coordinates of the other view, and (B, g*g) whether they fall inside it. Boxes: (B, 4) x0, y0, x1,
        y1 of each view in the scene (x0 > x1 for a flipped view)."""
        c = (torch.arange(grid, dtype=torch.float32, device=box_from.device) + 0.5) / grid
        v, u = torch.meshgrid(c, c, indexing='ij')
        u, v = u.flatten()[None], v.flatten()[None]
        x = box_from[:, :1] + u * (box_from[:, 2:3] - box_from[:, :1])
        y = box_from[:, 1:2] + v * (box_from[:, 3:4] - box_from[:, 1:2])
        ut = (x - box_to[:, :1]) / (box_to[:, 2:3] - box_to[:, :1])
        vt = (y - box_to[:, 1:2]) / (box_to[:, 3:4] - box_to[:, 1:2])
        inside = (ut >= 0) & (ut <= 1) & (vt >= 0) & (vt <= 1)
        return torch.stack([ut, vt], -1) * 2 - 1, inside

    def _logits(self, net, head, x: torch.Tensor) -> torch.Tensor:
        feats = net.patch_features(x)  # (B, C, g, g)
        B, C, g, _ = feats.shape
        return head(feats.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(B, -1, g, g)

    def forward(self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = 'loss'):
        """``inputs`` (B, 2, 3, S, S) uint8 views, ``data_samples`` (B, 2, 4) their boxes."""
        if mode != 'loss':
            raise ValueError(f"unknown mode '{mode}'; valid: ['loss']")
        if isinstance(inputs, (list, tuple)):
            inputs, data_samples = torch.stack(list(inputs)), torch.stack(list(data_samples))
        views = [self._normalise(inputs[:, i]) for i in range(2)]
        boxes = [data_samples[:, i].to(views[0].device) for i in range(2)]
        with torch.no_grad():
            teacher = [self._logits(self.teacher, self.teacher_head, v) for v in views]
        student = [self._logits(self.student, self.student_head, v) for v in views]
        g = student[0].shape[-1]
        losses, used, targets = [], [], []
        for s, t in ((0, 1), (1, 0)):
            where, inside = self.correspondences(boxes[s], boxes[t], g)
            tl = F.grid_sample(teacher[t], where[:, None], mode='bilinear', align_corners=False)[:, :, 0]  # (B, K, g*g)
            target = F.softmax((tl - self.center[None, :, None]) / self.teacher_temp, 1)
            logp = F.log_softmax(student[s].flatten(2) / self.student_temp, 1)
            per_patch = -(target * logp).sum(1)
            losses.append((per_patch * inside).sum() / inside.sum().clamp(min=1))
            targets.append(target.argmax(1)[inside])
            used.append(inside.float().mean())
        with torch.no_grad():  # DINO's centre: a moving average of the teacher's mean output
            mean = torch.cat([t.flatten(2) for t in teacher], 2).mean((0, 2))
            self.center.mul_(self.center_momentum).add_(mean, alpha=1 - self.center_momentum)
        assigned = torch.cat(targets)
        return dict(loss=sum(losses) / 2, overlap=sum(used) / 2,
                    prototypes_used=torch.tensor(float(assigned.unique().numel()), device=assigned.device))

    def train_step(self, data, optim_wrapper) -> dict:
        log_vars = super().train_step(data, optim_wrapper)
        with torch.no_grad():  # the teacher follows the student
            for t, s in zip(list(self.teacher.parameters()) + list(self.teacher_head.parameters()),
                            list(self.student.parameters()) + list(self.student_head.parameters())):
                t.mul_(self.momentum).add_(s.detach(), alpha=1 - self.momentum)
        return log_vars

    def export(self, out_dir: str | os.PathLike, name: str, *, dtype: torch.dtype | None = None) -> tuple[Path, Path]:
        """Write the teacher's ViT as ``name.safetensors`` (timm keys) and ``name.json`` (``model_name``,
        ``model_kwargs``), loadable by ``build_vfm(config_file=..., checkpoint=...)``."""
        from safetensors.torch import save_file
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                 for k, v in self.teacher.model.state_dict().items()}
        weights, config = out / f'{name}.safetensors', out / f'{name}.json'
        tmp = weights.with_suffix('.tmp')
        save_file(state, str(tmp))
        os.replace(tmp, weights)
        config.write_text(json.dumps(dict(model_name=self.model_name, model_kwargs=self.model_kwargs), indent=1) + '\n')
        return config, weights
