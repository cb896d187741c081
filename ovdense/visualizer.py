"""mmseg's visualiser with the names of the classes each prediction was made in: the Runner's visualisation hook,
``tools/test.py --show-dir`` and ``MMSegInferencer`` draw the vocabulary's names (stock ``SegLocalVisualizer`` draws
Cityscapes' unless given ``classes``, whatever the model predicts)."""
from __future__ import annotations

from typing import Any

from mmseg.visualization import SegLocalVisualizer

from .registry import register
from .visualization import palette


@register('VISUALIZERS', mmdet=False)
class OVSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that names a prediction's labels by the classes it carries (``metainfo['classes']``,
    set by every ovdense segmentor: the vocabulary of that call) with ovdense's palette; samples without them are
    drawn with the ``dataset_meta`` given, as stock mmseg does."""

    def add_datasample(self, name: str, image: Any, data_sample: Any = None, *args: Any, **kwargs: Any) -> None:
        classes = data_sample.metainfo.get('classes') if data_sample is not None else None
        if not classes:
            return super().add_datasample(name, image, data_sample, *args, **kwargs)
        given = self.dataset_meta
        self.dataset_meta = dict(classes=tuple(classes),
                                 palette=[tuple(int(v) for v in c) for c in palette(len(classes))])
        try:
            return super().add_datasample(name, image, data_sample, *args, **kwargs)
        finally:
            self.dataset_meta = given
