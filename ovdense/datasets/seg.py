"""Semantic segmentation benchmarks that mmseg 1.x does not ship."""
from __future__ import annotations

from pathlib import Path

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations

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


@register('TRANSFORMS', mmdet=False)
class OVLoadWideAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` for label maps beyond 255 classes (ADE-847, PASCAL Context-459: 16-bit TIFF,
    ignore 65535): the values are kept as int64 (mmseg's casts to uint8, wrapping class 300 to 44 silently)."""

    def _load_seg_map(self, results: dict) -> None:
        raw = fileio.get(results['seg_map_path'], backend_args=self.backend_args)
        gt = mmcv.imfrombytes(raw, flag='unchanged', backend=self.imdecode_backend)
        if gt is None:
            raise ValueError(f"label map {results['seg_map_path']} cannot be decoded")
        gt = gt.squeeze().astype(np.int64)
        if results.get('reduce_zero_label') or self.reduce_zero_label:
            raise ValueError('OVLoadWideAnnotations does not reduce the zero label (no wide benchmark needs it)')
        if results.get('label_map') is not None:
            src = gt.copy()
            for old_id, new_id in results['label_map'].items():
                gt[src == old_id] = new_id
        results['gt_seg_map'] = gt
        results['seg_fields'].append('gt_seg_map')


@register('DATASETS', mmdet=False)
class OVADE20KFullDataset(BaseSegDataset):
    """ADE20K-Full validation, 847 classes (ADE-847), as CAT-Seg / SAN / OVSeg evaluate it: the layout of CAT-Seg's
    ``datasets/prepare_ade20k_full.py`` (``images_detectron2/validation/*.jpg``, ``annotations_detectron2/validation/
    *.tif``: uint16 class indices, 65535 unlabelled). Load labels with :class:`OVLoadWideAnnotations`."""
    METAINFO = dict(classes=_classes('ade847'))

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        kwargs.setdefault('ignore_index', 65535)
        kwargs.setdefault('data_prefix', dict(img_path='images_detectron2/validation',
                                              seg_map_path='annotations_detectron2/validation'))
        super().__init__(img_suffix='.jpg', seg_map_suffix='.tif', **kwargs)


@register('DATASETS', mmdet=False)
class OVPascalContext459Dataset(BaseSegDataset):
    """PASCAL Context validation with all 459 classes (PC-459), the layout of CAT-Seg's
    ``datasets/prepare_pascal_context_459.py`` (``JPEGImages/*.jpg``, ``annotations_detectron2/pc459_val/*.tif``:
    the ``LabelMap`` of ``trainval/*.mat`` minus 1, so 0..458 with every pixel labelled; the reference's ignore label
    459 never occurs). Load labels with :class:`OVLoadWideAnnotations`."""
    METAINFO = dict(classes=_classes('pc459'))

    def __init__(self, ann_file: str = 'pascalcontext_val.txt', **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        kwargs.setdefault('ignore_index', 459)
        kwargs.setdefault('data_prefix', dict(img_path='JPEGImages', seg_map_path='annotations_detectron2/pc459_val'))
        super().__init__(img_suffix='.jpg', seg_map_suffix='.tif', ann_file=ann_file, **kwargs)
