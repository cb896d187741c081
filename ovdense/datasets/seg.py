"""Semantic segmentation benchmarks that mmseg 1.x does not ship."""
from __future__ import annotations

from pathlib import Path

from mmseg.datasets import BaseSegDataset

from ..registry import register
from .synthetic import BASE_CLASSES, NOVEL_CLASSES, semantic_classes

_VOCAB = Path(__file__).parent.parent / 'vocabularies'


def _classes(name: str) -> tuple[str, ...]:
    return tuple(ln.split(',')[0].strip() for ln in (_VOCAB / f'{name}.txt').read_text().splitlines() if ln.strip())


@register('DATASETS', mmdet=False)
class OVPascalVOC20Dataset(BaseSegDataset):
    """PASCAL VOC 2012 without background: the 20 object classes; background pixels are ignored.

    Layout as mmseg's ``PascalVOCDataset`` (``JPEGImages``, ``SegmentationClass``, an ann_file).
    """
    METAINFO = dict(classes=_classes('voc20'))

    def __init__(self, ann_file: str, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', True)
        super().__init__(img_suffix='.jpg', seg_map_suffix='.png', ann_file=ann_file, **kwargs)


@register('DATASETS', mmdet=False)
class OVCOCOObjectDataset(BaseSegDataset):
    """COCO-Object: COCO val2017 instance masks merged into semantic maps, 80 things + background (0).

    The semantic maps are made from the instance annotations (label = COCO class index + 1, 0 for
    background, 255 ignore), as in the SCLIP/NACLIP/ClearCLIP evaluations.
    """
    METAINFO = dict(classes=_classes('coco_object'))

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(img_suffix='.jpg', seg_map_suffix='_instanceTrainIds.png', **kwargs)


@register('DATASETS', mmdet=False)
class OVCamVidDataset(BaseSegDataset):
    """CamVid (SegNet tutorial layout): ``val/*.png`` images and ``valannot/*.png`` labels 0..11,
    where 11 (unlabelled) is mapped to the ignore index."""
    METAINFO = dict(classes=_classes('camvid'),
                    palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [0, 0, 192],
                             [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                             [0, 128, 192]])
    UNLABELLED = 11

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        kwargs.setdefault('data_prefix', dict(img_path='val', seg_map_path='valannot'))
        super().__init__(img_suffix='.png', seg_map_suffix='.png', **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(f'no CamVid images found under {self.data_prefix.get("img_path")}')
        for info in data_list:
            info['label_map'] = {**(info.get('label_map') or {}), self.UNLABELLED: self.ignore_index}
        return data_list


@register('DATASETS', mmdet=False)
class OVSyntheticSegDataset(BaseSegDataset):
    """The synthetic open-vocabulary world exported by ``ovdense.datasets.synthetic.export``.

    Semantic labels: the stuff classes, then the 12 object classes; ``base_classes`` and
    ``novel_classes`` in the metainfo give the split used for training heads.
    """
    METAINFO = dict(classes=semantic_classes(), base_classes=BASE_CLASSES, novel_classes=NOVEL_CLASSES)

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        kwargs.setdefault('data_prefix', dict(img_path='images', seg_map_path='semantic'))
        super().__init__(img_suffix='.png', seg_map_suffix='.png', **kwargs)
