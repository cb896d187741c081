"""Zero-shot segmentation report: mIoU on seen and unseen classes, and their harmonic mean."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from mmseg.evaluation import IoUMetric

from ..registry import register


def harmonic_mean(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


@register('METRICS', mmdet=False)
class OVZeroShotIoUMetric(IoUMetric):
    """mmseg's IoUMetric, plus the zero-shot report (ZegFormer / ZSSeg protocol): mIoU over the seen
    classes, over the unseen classes, and hIoU = their harmonic mean.

    Unseen classes are the dataset's ``novel_classes`` metadata; seen classes are all the others (or its
    ``base_classes`` when ``seen='base'``). Per-class IoUs are in the usual table; ``per_class`` also
    returns them as ``IoU.<class>`` metrics.

    Args:
        seen: ``'rest'`` (every class not unseen) or ``'base'`` (only ``base_classes``).
        per_class: add one ``IoU.<class>`` metric per class.
    """

    default_prefix = ''  # keys as mmseg's IoUMetric reports them (mIoU, ...)

    def __init__(self, *, seen: str = 'rest', per_class: bool = False, **kwargs) -> None:
        if seen not in ('rest', 'base'):
            raise ValueError(f"unknown seen '{seen}'; valid: ['rest', 'base']")
        super().__init__(iou_metrics=['mIoU'], **kwargs)
        self.seen = seen
        self.per_class = per_class

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        res = tuple(zip(*results))
        inter, union = sum(res[0]), sum(res[1])
        iou = (inter / union).numpy() * 100  # nan where a class never appears
        classes = list(self.dataset_meta['classes'])
        novel = set(self.dataset_meta.get('novel_classes', ()))
        missing = novel - set(classes)
        if missing:
            raise ValueError(f'novel classes {sorted(missing)} are not in the dataset classes {classes}')
        if self.seen == 'base':
            seen = set(self.dataset_meta.get('base_classes', ()))
        else:
            seen = set(classes) - novel

        def mean(names: set) -> float:
            vals = [iou[i] for i, c in enumerate(classes) if c in names and not np.isnan(iou[i])]
            return float(np.mean(vals)) if vals else float('nan')

        out = OrderedDict(metrics)
        out['mIoU_seen'] = round(mean(seen), 2)
        if novel:
            out['mIoU_unseen'] = round(mean(novel), 2)
            out['hIoU'] = round(harmonic_mean(out['mIoU_seen'], out['mIoU_unseen']), 2)
        if self.per_class:
            out.update({f'IoU.{c}': round(float(v), 2) for c, v in zip(classes, iou)})
        return dict(out)
