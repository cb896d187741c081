"""Open-vocabulary detection datasets: COCO-format data with a base/novel class split as metadata."""
from __future__ import annotations

from mmdet.datasets import CocoDataset

from ..registry import register

# OV-COCO (OVR-CNN split): 65 classes, 48 base and 17 novel, in COCO category order.
OV_COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie',
    'suitcase', 'frisbee', 'skis', 'snowboard', 'kite', 'skateboard', 'surfboard', 'bottle', 'cup', 'fork', 'knife',
    'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'bed', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'toothbrush')
OV_COCO_NOVEL = ('airplane', 'bus', 'cat', 'dog', 'cow', 'elephant', 'umbrella', 'tie', 'snowboard', 'skateboard',
                 'cup', 'knife', 'cake', 'couch', 'keyboard', 'sink', 'scissors')
OV_COCO_BASE = tuple(c for c in OV_COCO_CLASSES if c not in OV_COCO_NOVEL)


@register('DATASETS', mmseg=False)
class OVCocoDataset(CocoDataset):
    """mmdet's CocoDataset with ``base_classes`` / ``novel_classes`` metadata (default: OV-COCO 48/17;
    categories of the file outside ``classes`` are not loaded).

    Args:
        drop_novel: remove the instances of novel classes when loading (training on base classes from
            a file that annotates everything, e.g. COCO128; the OV-COCO files have none to drop).
    """

    METAINFO = dict(classes=OV_COCO_CLASSES, base_classes=OV_COCO_BASE, novel_classes=OV_COCO_NOVEL,
                    palette=CocoDataset.METAINFO['palette'][:len(OV_COCO_CLASSES)])

    def __init__(self, *args, drop_novel: bool = False, **kwargs) -> None:
        self.drop_novel = drop_novel
        super().__init__(*args, **kwargs)
        classes = list(self.metainfo['classes'])
        unknown = set(self.metainfo.get('novel_classes', ())) - set(classes)
        if unknown:
            raise ValueError(f'novel classes {sorted(unknown)} are not in the dataset classes {classes}')

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        if self.drop_novel and isinstance(info, dict):
            classes = list(self.metainfo['classes'])
            novel = {classes.index(c) for c in self.metainfo.get('novel_classes', ()) if c in classes}
            info['instances'] = [i for i in info['instances'] if i['bbox_label'] not in novel]
        return info
