"""Open-vocabulary detection report: COCO AP50 on base, novel and all classes (OV-COCO protocol)."""
from __future__ import annotations

import contextlib
import io
import os.path as osp
import tempfile

import numpy as np
from mmdet.datasets.api_wrappers import COCOeval
from mmdet.evaluation import CocoMetric, LVISMetric
from mmengine.fileio import load

from ..registry import register


@register('METRICS', mmseg=False)
class OVCocoMetric(CocoMetric):
    """mmdet's CocoMetric (all its usual results), plus per-class AP at IoU 0.5 (100 detections per
    image, all areas) averaged over the dataset's ``base_classes`` and ``novel_classes``:
    ``{bbox,segm}_AP50_base``, ``_AP50_novel`` and ``_AP50`` (over all classes; equals COCO's AP50).
    Classes without ground truth are left out of the means, as COCO does.
    """

    def compute_metrics(self, results: list) -> dict[str, float]:
        out = super().compute_metrics(results)  # also sets _coco_api, cat_ids and img_ids
        if self.format_only:
            return out
        classes = list(self.dataset_meta['classes'])
        novel = set(self.dataset_meta.get('novel_classes', ()))
        base = set(self.dataset_meta.get('base_classes', set(classes) - novel))
        names = [self._coco_api.loadCats(c)[0]['name'] for c in self.cat_ids]
        _, preds = zip(*results)
        with tempfile.TemporaryDirectory() as tmp:
            files = self.results2json(preds, osp.join(tmp, 'results'))
            for metric in self.metrics:
                if metric not in ('bbox', 'segm'):
                    continue
                ap50 = self._ap50_per_class(load(files[metric]), metric)
                per_class = dict(zip(names, ap50))

                def mean(group: set) -> float:
                    vals = [v for c, v in per_class.items() if c in group and not np.isnan(v)]
                    return round(float(np.mean(vals)), 4) if vals else float('nan')

                out[f'{metric}_AP50'] = mean(set(names))
                out[f'{metric}_AP50_base'] = mean(base)
                if novel:
                    out[f'{metric}_AP50_novel'] = mean(novel)
        return out

    def _ap50_per_class(self, dets: list, iou_type: str) -> np.ndarray:
        """(K,) AP at IoU 0.5 per category of ``cat_ids`` (nan: no ground truth; 0 if nothing detected)."""
        if not dets:
            return np.zeros(len(self.cat_ids))
        if iou_type == 'segm':
            for d in dets:
                d.pop('bbox', None)
        ev = COCOeval(self._coco_api, self._coco_api.loadRes(dets), iou_type)
        ev.params.catIds = self.cat_ids
        ev.params.imgIds = self.img_ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
        prec = ev.eval['precision'][0, :, :, 0, ev.params.maxDets.index(100)]  # (recall, K) at IoU 0.5
        return np.array([p[p > -1].mean() if (p > -1).any() else np.nan for p in prec.T])


class _NumpyWithFloat:
    """numpy, plus the ``np.float`` alias that NumPy 1.24 removed (as ``float64``)."""

    float = np.float64

    def __getattr__(self, name: str):
        return getattr(np, name)


@register('METRICS', mmseg=False)
class OVLVISMetric(LVISMetric):
    """mmdet's LVISMetric (AP, APr = novel under OV-LVIS, APc, APf), runnable with NumPy >= 1.24.

    The lvis API on PyPI (0.5.3, the latest) still calls ``np.float`` in ``LVISEval.accumulate``; the fix
    exists only in lvis-api's git. Before evaluating, ``lvis.eval``'s own ``np`` name (nothing else) is
    pointed at numpy with that alias restored.
    """

    def compute_metrics(self, results: list) -> dict[str, float]:
        import lvis.eval
        if not hasattr(np, 'float') and isinstance(lvis.eval.np, type(np)):
            lvis.eval.np = _NumpyWithFloat()
        return super().compute_metrics(results)
