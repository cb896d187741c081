"""Dataset + metric wiring on real annotations (CamVid val from ../shared)."""
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, METRICS

from ovdense.testing import shared_dir

from .conftest import requires_shared

CONFIG = 'configs/sclip/sclip_vit-b16_camvid-336.py'


def _dataset():
    import ovdense.datasets  # noqa: F401
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIG)
    cfg.test_dataloader.dataset.data_root = str(shared_dir() / 'data' / 'camvid')
    return DATASETS.build(cfg.test_dataloader.dataset), cfg


@requires_shared
def test_camvid_oracle_gives_100_miou():
    """Ground truth fed as the prediction through IoUMetric: 100 mIoU, with label 11 ignored."""
    dataset, cfg = _dataset()
    assert len(dataset) == 101
    metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = dataset.metainfo
    seen_ignore = False
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data
        seen_ignore |= bool((gt == 255).any())
        assert int(gt[gt != 255].max()) <= 10
        metric.process([], [dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt))])
    assert seen_ignore  # the unlabelled class (11) really was mapped to ignore
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] == 100.0 and res['aAcc'] == 100.0


@requires_shared
def test_camvid_metric_penalises_errors():
    dataset, cfg = _dataset()
    metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = dataset.metainfo
    for i in range(3):
        gt = dataset[i]['data_samples'].gt_sem_seg.data
        pred = gt.clone()
        pred[gt == 3] = 0  # all road predicted as sky
        metric.process([], [dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt))])
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] < 90.0


def test_all_configs_parse():
    from pathlib import Path
    from mmseg.registry import MODELS

    from ovdense.models.methods import registered_methods
    methods = [n for n, c in registered_methods().items()  # each training-free method ships its protocols
               if c.__module__.startswith('ovdense.') and not c.trained_for]
    configs = sorted(p for m in methods for p in Path('configs', m).glob('*_vit-b16_*.py'))
    assert len(configs) == 9 * len(methods)  # each method x (8 benchmarks + CamVid) on OpenAI ViT-B/16
    for path in configs:
        cfg = Config.fromfile(str(path))
        assert cfg.model.type == 'OVSegmentor'
        assert MODELS.get(cfg.model.backbone.method.type).name == path.parent.name
        assert cfg.test_dataloader.dataset.pipeline[1]['type'] == 'Resize'
        assert np.isfinite(cfg.model.logit_scale)


def _one_box_coco(root, img: np.ndarray, bbox: list) -> None:
    """``root/images/a.png`` and ``root/ann.json``: one image with one annotated box (x, y, w, h)."""
    import json

    from PIL import Image
    (root / 'images').mkdir()
    Image.fromarray(img).save(root / 'images' / 'a.png')
    h, w = img.shape[:2]
    coco = dict(images=[dict(id=1, file_name='a.png', width=w, height=h)], categories=[dict(id=7, name='box')],
                annotations=[dict(id=1, image_id=1, category_id=7, bbox=bbox, area=bbox[2] * bbox[3], iscrowd=0)])
    (root / 'ann.json').write_text(json.dumps(coco))


def test_clipself_box_crops_are_enlarged_by_box_crop_scale(tmp_path):
    """A white 20 x 20 box on black: the teacher crop of its box is all white at scale 1 and holds the
    box in its central half (a quarter of the area) at scale 2; the reference's 1.5 is the default."""
    from ovdense.datasets.clipself import OVCLIPSelfDataset
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:40, 22:42] = 255
    _one_box_coco(tmp_path, img, [22, 20, 20, 20])
    kw = dict(mode='annotations', input_size=64, crop_size=32, patch_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    white = {}
    for scale in (1.0, 1.5, 2.0):
        ds = OVCLIPSelfDataset(str(tmp_path / 'ann.json'), str(tmp_path / 'images'), box_crop_scale=scale, **kw)
        crop = ds[0]['data_samples'].crops[0, 0]
        white[scale] = float((crop > 0.5).float().mean())
    assert white[1.0] == 1.0 and abs(white[2.0] - 0.25) < 0.05
    assert abs(white[1.5] - 1 / 1.5 ** 2) < 0.05
    assert OVCLIPSelfDataset(str(tmp_path / 'ann.json'), str(tmp_path / 'images'), **kw).box_crop_scale == 1.5


def test_clipself_square_box_crops_need_no_padding(tmp_path):
    """A 20 x 10 white box in the corner of a grey image, crop enlarged 2x: the reference's crop is clipped
    to the image and zero-padded (black bands); the square one is a 40-px window shifted inside the image."""
    import pytest

    from ovdense.datasets.clipself import OVCLIPSelfDataset
    img = np.full((64, 64, 3), 128, np.uint8)
    img[50:60, 0:20] = 255
    _one_box_coco(tmp_path, img, [0, 50, 20, 10])
    kw = dict(mode='annotations', input_size=64, crop_size=32, patch_size=16, mean=(0, 0, 0), std=(1, 1, 1),
              box_crop_scale=2.0)
    ref = OVCLIPSelfDataset(str(tmp_path / 'ann.json'), str(tmp_path / 'images'), **kw)[0]['data_samples'].crops[0]
    sq = OVCLIPSelfDataset(str(tmp_path / 'ann.json'), str(tmp_path / 'images'), box_crop_shape='square',
                           **kw)[0]['data_samples'].crops[0]
    assert (ref == 0).all(0).float().mean() > 0.2  # black bands of the padded 30 x 19 crop
    assert (sq > 0.4).all()  # grey and white only
    assert abs(float((sq[0] > 0.75).float().mean()) - 200 / 40 ** 2) < 0.03  # the box in a 40 x 40 window
    with pytest.raises(ValueError, match="'square'"):
        OVCLIPSelfDataset(str(tmp_path / 'ann.json'), str(tmp_path / 'images'), box_crop_shape='round', **kw)


def test_maskclip_context59_uses_maskclips_own_names():
    """MaskCLIP prompts its Context-59 classes by its prompt_engineering.py names, not mmseg's."""
    from ovdense.vocabulary import Vocabulary
    cfg = Config.fromfile('configs/maskclip/maskclip_vit-b16_context59-520x520.py')
    names = Vocabulary.coerce(cfg.model.text_encoder.vocabulary).names
    mmseg = Vocabulary.from_dataset('context59').names
    assert len(names) == 59 and [(a, b) for a, b in zip(names, mmseg) if a != b] == [
        ('airplane', 'aeroplane'), ('potted plant', 'pottedplant'), ('tv monitor', 'tvmonitor')]


def test_wide_benchmarks_keep_16_bit_labels(tmp_path):
    """ADE-847 and PC-459 label maps are 16-bit TIFFs: class 300 stays 300 (mmseg's LoadAnnotations would make it
    44), 65535 is ignored by the shipped evaluator, and a prediction equal to the labels scores 100 mIoU."""
    import cv2
    from mmengine.config import Config as C

    from ovdense.apis import find_config
    init_default_scope('mmseg')
    root = tmp_path / 'ADE20K_2021_17_01'
    (root / 'images_detectron2/validation').mkdir(parents=True)
    (root / 'annotations_detectron2/validation').mkdir(parents=True)
    label = np.full((24, 32), 65535, np.uint16)
    label[:12] = 300
    label[12:, :16] = 846
    cv2.imwrite(str(root / 'images_detectron2/validation/a.jpg'), np.zeros((24, 32, 3), np.uint8))
    cv2.imwrite(str(root / 'annotations_detectron2/validation/a.tif'), label)
    cfg = C.fromfile(str(find_config('catseg_vit-b16_ade847-640')))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=str(root))
    ds = DATASETS.build(ds_cfg)
    assert len(ds.metainfo['classes']) == 847 and ds.metainfo['classes'][1] == 'building'
    gt = ds[0]['data_samples'].gt_sem_seg.data[0]
    assert gt.dtype == torch.int64 and torch.equal(gt, torch.from_numpy(label.astype(np.int64)))
    metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = ds.metainfo
    pred = gt.clone()
    pred[gt == 65535] = 5  # unlabelled pixels do not count
    metric.process([], [dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))])
    assert metric.compute_metrics(metric.results)['mIoU'] == 100.0
    pc = C.fromfile(str(find_config('catseg_vit-b16_pc459-640')))
    assert pc.test_evaluator.ignore_index == 459 and pc.test_dataloader.dataset.type == 'OVPascalContext459Dataset'
