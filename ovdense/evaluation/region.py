"""Region classification: how well region features name annotated regions of a vocabulary."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from ..registry import register

PATHS = ('roi', 'mask', 'crop')


TOPK = 5


def per_class_topk(scores: torch.Tensor, labels: torch.Tensor, k: int,
                   classes: Sequence[int] | None = None, *, ranked: bool = False) -> float:
    """Mean over classes (present in ``labels``, restricted to ``classes`` if given) of the share of
    their regions whose label is among the top-k scores. (N, C) scores, (N,) labels. In %.
    With ``ranked``, ``scores`` are already (N, >= k) class indices, best first."""
    topk = scores[:, :k] if ranked else scores.topk(min(k, scores.shape[1]), dim=1).indices
    hit = (topk == labels[:, None]).any(1)
    present = labels.unique().tolist()
    keep = [c for c in present if classes is None or c in classes]
    if not keep:
        return float('nan')
    return 100.0 * float(np.mean([hit[labels == c].float().mean().item() for c in keep]))


@register('METRICS')
class OVRegionClsMetric(BaseMetric):
    """Mean per-class top-1 / top-5 accuracy of annotated regions, for three region features:
    RoIAlign on the dense map (``roi``), mask pooling (``mask``) and the encoded image crop (``crop``).

    Expects model outputs with ``labels`` (n,) and ``scores_<path>`` (n, C). With the dataset's
    ``splits`` (base/novel) or ``isthing`` metadata, also reports those subsets. Only the top-5 class
    indices of each region are kept between batches, so memory does not grow with the vocabulary.
    """
    default_prefix = 'region'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            self.results.append({k: v if k == 'labels' else v.topk(min(TOPK, v.shape[1]), dim=1).indices
                                 for k, v in s.items() if k == 'labels' or k.startswith('scores_')})

    def compute_metrics(self, results: list) -> dict[str, float]:
        labels = torch.cat([r['labels'] for r in results])
        meta = self.dataset_meta or {}
        subsets: dict[str, list[int] | None] = {'': None}
        splits = meta.get('splits')
        if splits and len(set(splits)) > 1:
            for name in sorted(set(splits)):
                subsets[f'_{name}'] = [i for i, s in enumerate(splits) if s == name]
        isthing = meta.get('isthing')
        if isthing and len(set(isthing)) > 1:
            subsets['_thing'] = [i for i, t in enumerate(isthing) if t]
            subsets['_stuff'] = [i for i, t in enumerate(isthing) if not t]
        out: dict[str, float] = {}
        for path in PATHS:
            key = f'scores_{path}'
            if key not in results[0]:
                continue
            scores = torch.cat([r[key] for r in results])
            for suffix, classes in subsets.items():
                out[f'{path}_top1{suffix}'] = per_class_topk(scores, labels, 1, classes, ranked=True)
                out[f'{path}_top5{suffix}'] = per_class_topk(scores, labels, TOPK, classes, ranked=True)
        out['num_regions'] = float(len(labels))
        return out
