"""Open-vocabulary detection datasets: COCO-format data with a base/novel class split as metadata."""
from __future__ import annotations

from mmdet.datasets import CocoDataset, LVISV1Dataset

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


@register('DATASETS', mmseg=False)
class OVLVISV1Dataset(LVISV1Dataset):
    """mmdet's LVISV1Dataset with the OV-LVIS split as metadata: ``novel_classes`` = the rare
    categories (``frequency == 'r'`` in the annotation file), ``base_classes`` = common + frequent.

    Args:
        drop_novel: remove rare-category instances when loading (training on base classes, as
            ViLD / F-VLM / F-ViT do with the full LVIS v1 train file).
    """

    def __init__(self, *args, drop_novel: bool = False, **kwargs) -> None:
        self.drop_novel = drop_novel
        self._novel_labels: set[int] | None = None
        super().__init__(*args, **kwargs)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        if self._novel_labels is None:  # self.lvis (the loaded file) exists while data infos are parsed
            classes = list(self.metainfo['classes'])
            rare = {c['id'] for c in self.lvis.cats.values() if c.get('frequency') == 'r'}
            self._novel_labels = {self.cat2label[i] for i in rare if i in self.cat2label}
            self._metainfo['novel_classes'] = tuple(classes[i] for i in sorted(self._novel_labels))
            self._metainfo['base_classes'] = tuple(c for i, c in enumerate(classes) if i not in self._novel_labels)
        info = super().parse_data_info(raw_data_info)
        if self.drop_novel and isinstance(info, dict):
            info['instances'] = [i for i in info['instances'] if i['bbox_label'] not in self._novel_labels]
        return info
