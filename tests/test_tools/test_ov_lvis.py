"""OV-LVIS split and metric on real photos: COCO128 written in LVIS v1 format (OV-COCO novel = 'rare')."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils

from ovdense.datasets.det import OV_COCO_NOVEL, OVLVISV1Dataset
from ovdense.testing import shared_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]
COCO128 = shared_dir() / 'data' / 'coco128'


def lvis_file(tmp_path: Path, n_images: int = 24) -> tuple[Path, list[str]]:
    coco = json.loads((COCO128 / 'annotations' / 'instances.json').read_text())
    images = sorted(coco['images'], key=lambda i: i['id'])[:n_images]
    ids = {i['id'] for i in images}
    anns = [a for a in coco['annotations'] if a['image_id'] in ids and not a['iscrowd'] and isinstance(a['segmentation'], list)]
    cats = [dict(id=c['id'], name=c['name'], synonyms=[c['name']], frequency='r' if c['name'] in OV_COCO_NOVEL else 'f')
            for c in coco['categories']]
    lvis = dict(
        images=[dict(id=i['id'], height=i['height'], width=i['width'], neg_category_ids=[], not_exhaustive_category_ids=[],
                     coco_url=f"http://images.cocodataset.org/images/{i['file_name']}") for i in images],
        annotations=[dict(id=a['id'], image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'],
                          area=a['area'], segmentation=a['segmentation']) for a in anns],
        categories=cats)
    path = tmp_path / 'lvis_coco128.json'
    path.write_text(json.dumps(lvis))
    return path, [c['name'] for c in cats]


def dataset(path, names, **kw):
    return OVLVISV1Dataset(data_root=str(COCO128), ann_file=str(path), data_prefix=dict(img=''),
                           metainfo=dict(classes=tuple(names)), pipeline=[], **kw)


@requires_shared
def test_rare_categories_are_the_novel_split(tmp_path):
    path, names = lvis_file(tmp_path)
    ds = dataset(path, names, test_mode=True)
    assert set(ds.metainfo['novel_classes']) == set(OV_COCO_NOVEL) & set(names)
    assert set(ds.metainfo['base_classes']) == set(names) - set(OV_COCO_NOVEL)
    labels = [x['bbox_label'] for i in range(len(ds)) for x in ds.get_data_info(i)['instances']]
    assert any(names[x] in OV_COCO_NOVEL for x in labels)
    assert Path(ds.get_data_info(0)['img_path']).is_file()
    train = dataset(path, names, drop_novel=True)
    kept = [names[x['bbox_label']] for i in range(len(train)) for x in train.get_data_info(i)['instances']]
    assert kept and not set(kept) & set(OV_COCO_NOVEL)


@requires_shared
def test_lvis_metric_oracle_gives_ap_one_on_rare_and_frequent(tmp_path):
    from ovdense.evaluation.ov_coco import OVLVISMetric
    path, names = lvis_file(tmp_path)
    ds = dataset(path, names, test_mode=True)
    metric = OVLVISMetric(ann_file=str(path), metric=['bbox', 'segm'])
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        h, w = info['height'], info['width']
        inst = info['instances']
        masks = [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(x['mask'], h, w))) for x in inst]
        pred = InstanceData(bboxes=torch.tensor([x['bbox'] for x in inst], dtype=torch.float32).reshape(-1, 4),
                            labels=torch.tensor([x['bbox_label'] for x in inst], dtype=torch.long),
                            scores=torch.ones(len(inst)),
                            masks=torch.from_numpy(np.stack(masks)).bool() if masks else torch.zeros(0, h, w, dtype=torch.bool))
        metric.process({}, [dict(img_id=info['img_id'], ori_shape=(h, w), pred_instances=pred.to_dict())])
    res = metric.evaluate(len(ds))
    for kind in ('bbox', 'segm'):
        assert res[f'lvis/{kind}_APr'] == pytest.approx(1.0, abs=1e-3)
        assert res[f'lvis/{kind}_APf'] == pytest.approx(1.0, abs=1e-3)


def test_ov_lvis_config_builds_mask_fvit():
    """The OV-LVIS recipe config builds an OVFViT with a class-agnostic mask head over 1203 LVIS classes."""
    from mmdet.registry import MODELS
    from ovdense.testing import TINY_CLIP_CFG
    cfg = Config.fromfile(str(REPO / 'configs/fvit/fvit_vit-b16_ov-lvis-1024.py'))
    init_default_scope('mmdet')
    cfg.model.backbone.clip = dict(model_cfg=dict(TINY_CLIP_CFG, vision_cfg=dict(TINY_CLIP_CFG['vision_cfg'], layers=4)))
    cfg.model.backbone.out_indices = (0, 1, 2, 3)
    cfg.model.neck.in_channels = [64] * 4
    cfg.model.roi_head.vlm_roi_extractor.out_channels = 32
    cfg.model.roi_head.bbox_head.embed_dim = 32
    model = MODELS.build(cfg.model)
    assert model.roi_head.with_mask and model.roi_head.mask_head.class_agnostic
    assert len(model.vocabulary) == 1203 and model.roi_head.mask_head.num_classes == 1203
    assert cfg.test_evaluator.type == 'OVLVISMetric' and cfg.train_dataloader.dataset.drop_novel
    assert any(h['type'] == 'OVBaseClassesFromDatasetHook' for h in cfg.custom_hooks)
