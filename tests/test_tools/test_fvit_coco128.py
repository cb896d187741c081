"""OV-COCO F-ViT on real COCO128 photos: metric oracle, and a few training iterations + a test run."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import ovdense.models  # noqa: F401
from ovdense.datasets.det import OV_COCO_BASE, OV_COCO_NOVEL, OVCocoDataset
from ovdense.evaluation.ov_coco import OVCocoMetric
from ovdense.testing import TINY_EVA_CFG, golden_clip_cfg, shared_dir

from ..conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]
COCO128 = shared_dir() / 'data' / 'coco128'
ANN = str(COCO128 / 'annotations' / 'instances.json')


@requires_shared
def test_ground_truth_as_detections_gives_ap50_one():
    init_default_scope('mmdet')
    ds = OVCocoDataset(data_root=str(COCO128), ann_file='annotations/instances.json',
                       data_prefix=dict(img='images/'), test_mode=True, pipeline=[])
    metric = OVCocoMetric(ann_file=ANN, metric='bbox')
    metric.dataset_meta = ds.metainfo
    novel_seen = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        inst = [x for x in info['instances'] if not x['ignore_flag']]
        novel_seen += sum(ds.metainfo['classes'][x['bbox_label']] in OV_COCO_NOVEL for x in inst)
        pred = dict(bboxes=torch.tensor([x['bbox'] for x in inst], dtype=torch.float32).reshape(-1, 4),
                    labels=torch.tensor([x['bbox_label'] for x in inst], dtype=torch.long),
                    scores=torch.ones(len(inst)))
        metric.process({}, [dict(img_id=info['img_id'], ori_shape=(info['height'], info['width']),
                                 pred_instances=pred)])
    assert novel_seen > 0  # COCO128 has novel-class objects, so the novel AP50 below is not vacuous
    res = metric.evaluate(len(ds))
    assert res['coco/bbox_AP50'] == pytest.approx(1.0)
    assert res['coco/bbox_AP50_base'] == pytest.approx(1.0)
    assert res['coco/bbox_AP50_novel'] == pytest.approx(1.0)


@requires_shared
def test_drop_novel_keeps_only_base_instances():
    ds = OVCocoDataset(data_root=str(COCO128), ann_file='annotations/instances.json',
                       data_prefix=dict(img='images/'), drop_novel=True, pipeline=[])
    names = [ds.metainfo['classes'][x['bbox_label']] for i in range(len(ds)) for x in ds.get_data_info(i)['instances']]
    assert names and set(names) <= set(OV_COCO_BASE)


def _images_with_base_and_novel(n: int) -> list[int]:
    ds = OVCocoDataset(data_root=str(COCO128), ann_file='annotations/instances.json',
                       data_prefix=dict(img='images/'), test_mode=True, pipeline=[])
    out = []
    for i in range(len(ds)):
        names = {ds.metainfo['classes'][x['bbox_label']] for x in ds.get_data_info(i)['instances']}
        if names & set(OV_COCO_NOVEL) and names & set(OV_COCO_BASE):
            out.append(i)
    assert len(out) >= n
    return out[:n]


# config -> (tiny CLIP of that tower, its width, its embedding dimension): the golden tiny OpenAI-style CLIP, and a
# tiny random EVA-02 of 4 blocks
CONFIGS = {
    'fvit_vit-b16_ov-coco-640.py': (golden_clip_cfg(), 192, 128),
    'fvit_eva02-b16_ov-coco-640.py': (
        dict(model_cfg=dict(TINY_EVA_CFG, vision_cfg=dict(TINY_EVA_CFG['vision_cfg'], layers=4))), 64, 32),
    'fvit_declip-eva02-b16_ov-coco-640.py': (  # a DeCLIP backbone: its decoupled last block gives the VLM map
        dict(model_cfg=dict(TINY_EVA_CFG, vision_cfg=dict(TINY_EVA_CFG['vision_cfg'], layers=4))), 64, 32),
}


def _small_ov_coco_cfg(work_dir: Path, config: str = 'fvit_vit-b16_ov-coco-640.py') -> Config:
    cfg = Config.fromfile(str(REPO / 'configs/fvit' / config))
    clip, width, embed_dim = CONFIGS[config]
    cfg.work_dir = str(work_dir)
    bn = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
    cfg.model.backbone.update(out_indices=(0, 1, 2, 3), norm_cfg=bn)
    cfg.model.backbone.clip = clip  # replaces the B/16 entry
    cfg.model.neck.update(in_channels=[width] * 4, norm_cfg=bn)
    cfg.model.roi_head.vlm_roi_extractor.out_channels = embed_dim
    cfg.model.roi_head.bbox_head.update(embed_dim=embed_dim, norm_cfg=bn)
    cfg.model.text_encoder.templates = ['a photo of a {}.']
    held_out = dict(indices=_images_with_base_and_novel(4))  # so that every AP below has ground truth
    for split, extra in (('train', dict(drop_novel=True)), ('val', held_out), ('test', held_out)):
        dl = cfg[f'{split}_dataloader']
        dl.update(batch_size=2 if split == 'train' else 1, num_workers=0, persistent_workers=False)
        dl.dataset.update(data_root=str(COCO128), ann_file='annotations/instances.json', data_prefix=dict(img='images/'),
                          **extra)
    # smaller images and fewer boxes than the recipe, to keep the test to seconds on a CPU
    for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline,
                 cfg.test_dataloader.dataset.pipeline):
        for t in pipe:
            if t['type'] in ('RandomResize', 'Resize'):
                t['scale'] = (320, 320)
            if t['type'] == 'RandomCrop':
                t['crop_size'] = (320, 320)
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=500, max_per_img=100)
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.test_cfg.rpn.update(nms_pre=500, max_per_img=100)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = ANN
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    return cfg


@requires_shared
@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_ov_coco_config_trains_and_tests_on_coco128(tmp_path, config):
    from mmengine.runner import Runner
    torch.manual_seed(0)
    runner = Runner.from_cfg(_small_ov_coco_cfg(tmp_path, config))
    runner.train()
    assert (tmp_path / 'iter_2.pth').is_file()
    model = runner.model
    assert not any(p.requires_grad for p in model.backbone.vit.parameters())
    # the training softmax masked the novel classes: the base classes came from the dataset, and they are
    # saved with the weights, so the checkpoint alone knows them at inference
    assert model.roi_head.bbox_head.novel_logits == 'masked'
    assert model.roi_head.bbox_head.base_classes == OV_COCO_BASE
    from ovdense.apis import init_model
    assert init_model(runner.cfg, tmp_path / 'iter_2.pth').roi_head.bbox_head.base_classes == OV_COCO_BASE
    other = init_model(runner.cfg, tmp_path / 'iter_2.pth',  # another vocabulary: base classes matched by name
                       cfg_options={'model.text_encoder.vocabulary': ['Cat', 'Person', 'okapi']})
    assert other.roi_head.bbox_head.base_classes == ('Person',)  # cat is novel in OV-COCO, okapi unknown
    if 'eva02' in config:
        assert model.backbone.vit.tower.family == 'eva02'
    metrics = runner.test()
    for key in ('coco/bbox_AP50', 'coco/bbox_AP50_base', 'coco/bbox_AP50_novel'):
        assert not np.isnan(metrics[key]), key  # both splits have ground truth in these images
    # the Runner's test data path and the public API give the same detections (boxes, scores, labels)
    from ovdense.apis import inference_model
    model.cfg = runner.cfg
    model.roi_head.test_cfg.score_thr = 0.0  # two iterations of training: keep every box, to compare them
    compared = 0
    with torch.no_grad():
        for data in runner.test_dataloader:
            for got in model.test_step(data):
                want = inference_model(model, got.img_path).pred_instances
                got = got.pred_instances
                assert len(got) == len(want) > 0
                assert torch.allclose(got.bboxes, want.bboxes, atol=1e-3) and torch.equal(got.labels, want.labels)
                assert torch.allclose(got.scores, want.scores, atol=1e-5)
                compared += 1
    assert compared == 4
