"""The synthetic open-vocabulary world: deterministic, and its labels agree with each other."""
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ovdense.datasets.synthetic import (BASE_CLASSES, NOVEL_CLASSES, OBJECT_CLASSES, STUFF_CLASSES, WorldConfig,
                                        export, generate, semantic_classes)


def test_split_and_classes():
    assert len(OBJECT_CLASSES) >= 12 and len(set(OBJECT_CLASSES)) == len(OBJECT_CLASSES)
    assert set(BASE_CLASSES) | set(NOVEL_CLASSES) == set(OBJECT_CLASSES) and not set(BASE_CLASSES) & set(NOVEL_CLASSES)
    assert (len(BASE_CLASSES), len(NOVEL_CLASSES)) == (9, 3)


def test_deterministic_by_seed_and_index():
    a, b, c = generate(0, 5), generate(0, 5), generate(1, 5)
    assert np.array_equal(a.image, b.image) and a.captions == b.captions
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize('index', range(40))
def test_masks_boxes_captions_agree(index):
    s = generate(3, index, WorldConfig(size=96, max_objects=4))
    labels = semantic_classes()
    for k, o in enumerate(s.objects):
        assert o.mask.sum() >= 24
        # the visible mask is labelled with the object's class in the semantic map
        assert (s.semantic[o.mask] == labels.index(o.cls)).all()
        # the box is the tight box of the visible mask
        x0, y0, x1, y1 = (int(v) for v in o.box)
        assert o.mask[y0:y1, x0:x1].sum() == o.mask.sum()
        assert o.mask[y0, x0:x1].any() and o.mask[y1 - 1, x0:x1].any()
        assert o.mask[y0:y1, x0].any() and o.mask[y0:y1, x1 - 1].any()
        for other in s.objects[k + 1:]:
            assert not (o.mask & other.mask).any()  # occlusion: visible masks are disjoint
        # every caption names the object's shape; the attribute caption names its colour
        assert all(o.cls in cap for cap in s.captions)
        assert o.color in s.captions[0] and o.color in s.captions[1]
    # pixels not covered by an object are stuff (or ignored remnants of hidden objects)
    covered = np.zeros(s.semantic.shape, bool)
    for o in s.objects:
        covered |= o.mask
    rest = s.semantic[~covered]
    assert np.isin(rest, [labels.index(n) for n in s.stuff] + [255]).all()
    assert s.stuff[0] in s.captions[0]
    # no class is mentioned that is not in the image
    for c in set(OBJECT_CLASSES) - {o.cls for o in s.objects}:
        assert all(f' {c}' not in cap for cap in s.captions[2:4])


def test_object_class_frequencies_cover_all():
    seen = {o.cls for i in range(200) for o in generate(0, i).objects}
    assert seen == set(OBJECT_CLASSES)


def test_export_is_standard(tmp_path):
    out = export(tmp_path, split='val', num_images=12, seed=7, cfg=WorldConfig(size=96), progress=False)
    coco = json.loads((out / 'instances.json').read_text())
    assert [c['name'] for c in coco['categories']] == list(OBJECT_CLASSES)
    assert {c['split'] for c in coco['categories'] if c['name'] in NOVEL_CLASSES} == {'novel'}
    caps = json.loads((out / 'captions.json').read_text())
    assert len(coco['images']) == len(caps) == 12
    for ann in coco['annotations']:
        img = coco['images'][ann['image_id']]
        m = mask_utils.decode(dict(size=ann['segmentation']['size'], counts=ann['segmentation']['counts'].encode()))
        sem = cv2.imread(str(out / 'semantic' / img['file_name']), cv2.IMREAD_UNCHANGED)
        name = coco['categories'][ann['category_id'] - 1]['name']
        assert (sem[m.astype(bool)] == semantic_classes().index(name)).all()
        assert abs(ann['area'] - m.sum()) < 1e-6
        assert np.allclose(mask_utils.toBbox(mask_utils.encode(np.asfortranarray(m))), ann['bbox'])
    assert not list(tmp_path.glob('.*partial'))


def test_export_reads_through_mmseg_and_oracle_is_100(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import DATASETS

    import ovdense.datasets  # noqa: F401
    export(tmp_path, split='val', num_images=6, seed=1, cfg=WorldConfig(size=64), progress=False)
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(type='OVSyntheticSegDataset', data_root=str(tmp_path / 'val'),
                             pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                                       dict(type='PackSegInputs')]))
    assert len(ds) == 6 and ds.metainfo['novel_classes'] == NOVEL_CLASSES
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        gt = ds[i]['data_samples'].gt_sem_seg.data
        metric.process([], [dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt))])
    assert metric.compute_metrics(metric.results)['aAcc'] == 100.0
    assert len(STUFF_CLASSES) == 4


def test_outline_and_rotation_knobs():
    """Outlines only repaint object pixels (dark contour inside each silhouette); the rotation knob
    rescales the same draw, so the scene stream (classes, colours, stuff) does not change with it."""
    import math

    from ovdense.datasets.synthetic import OUTLINE
    plain = generate(4, 2, WorldConfig(outline=0))
    lined = generate(4, 2, WorldConfig(outline=2))
    changed = (plain.image != lined.image).any(-1)
    objects = np.zeros_like(changed)
    for o in plain.objects:
        objects |= o.mask
    assert changed.any() and not (changed & ~objects).any()
    assert (lined.image[changed] == OUTLINE).all()
    upright = generate(4, 2, WorldConfig(rotation=0.0))
    free = generate(4, 2, WorldConfig(rotation=math.pi))
    assert [(o.cls, o.color) for o in upright.objects] == [(o.cls, o.color) for o in free.objects]
    assert upright.stuff == free.stuff
    turned = [(a.mask != b.mask).any() for a, b in zip(upright.objects, free.objects) if a.cls not in ('circle', 'ring')]
    assert turned and all(turned)  # same objects, turned differently
    slight = generate(4, 2, WorldConfig(rotation=0.3))
    assert any((a.mask != b.mask).any() for a, b in zip(upright.objects, slight.objects) if a.cls not in ('circle', 'ring'))
