"""Trained open-vocabulary segmentation: text classifier, unseen classes left out of training."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ovdense.models import OVTextSegmentor
from ovdense.testing import random_images

CLASSES = ['sky', 'road', 'cat', 'dog']


def make(tiny_clip, **kw):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')  # the head and its loss come from mmseg's registries
    kw.setdefault('unseen', ['dog'])
    return OVTextSegmentor(
        backbone=dict(type='OVCLIPViT', clip=tiny_clip, method=dict(type='OVMaskCLIP'), out_indices=(0,)),
        decode_head=dict(type='OVTextSegHead', in_channels=[64, 32], channels=16, embed_dim=32,
                         norm_cfg=dict(type='BN'), align_corners=False, dropout_ratio=0.0,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        text_encoder=dict(vocabulary=CLASSES, templates=['a photo of a {}.'], synonyms='mean'), test_cfg=dict(mode='whole', return_logits=True), **kw)


def samples(labels):
    out = []
    for lab in labels:
        s = SegDataSample(gt_sem_seg=PixelData(data=lab[None].clone()))
        s.set_metainfo(dict(img_shape=lab.shape, ori_shape=lab.shape, pad_shape=lab.shape))
        out.append(s)
    return out


def labels(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, len(CLASSES), (2, 64, 64), generator=g)


def test_unseen_pixels_and_logits_do_not_reach_the_loss(tiny_clip):
    model = make(tiny_clip).train()
    x, lab = random_images(2, 64, 64), labels()
    loss = model.loss(x, samples(lab))['decode.loss_ce']
    ignored = lab.clone()
    ignored[lab == 3] = 255  # the unseen class, as if unlabelled
    assert torch.allclose(loss, model.loss(x, samples(ignored))['decode.loss_ce'], atol=1e-6)
    # the unseen class's logit is out of the softmax: changing its text embedding changes nothing
    logits = model.decode_head(model._head_inputs(model.extract_feat(x), model.class_embeddings()))
    assert logits.shape == (2, 4, 4, 4) and (logits[:, 3] == -1e4).all()
    assert (logits[:, :3].abs() < 1e3).all()


def test_backbone_frozen_head_learns(tiny_clip):
    model = make(tiny_clip).train()
    loss = model.loss(random_images(2, 64, 64), samples(labels()))['decode.loss_ce']
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.decode_head.embed.weight.grad is not None and model.decode_head.embed.weight.grad.abs().sum() > 0
    assert model.decode_head.logit_scale.grad is not None


def test_predict_batch2_scores_every_class_and_vocabulary_is_an_input(tiny_clip):
    model = make(tiny_clip).eval()
    x = random_images(2, 64, 64)
    out = model.predict(x, samples(labels()))
    assert len(out) == 2 and out[0].seg_logits.data.shape == (4, 64, 64)
    assert (out[0].seg_logits.data[3] > -1e3).all()  # unseen classes compete at test time
    assert out[1].pred_sem_seg.data.max() < 4
    model.set_vocabulary(['sky', 'road', 'cat', 'dog', 'zebra'])
    assert model.predict(x, samples(labels()))[0].seg_logits.data.shape == (5, 64, 64)


def test_unseen_must_be_in_vocabulary(tiny_clip):
    with pytest.raises(ValueError, match='zebra'):
        make(tiny_clip, unseen=['zebra'])


def test_slide_inference_sizes_by_the_vocabulary(tiny_clip):
    from mmengine.config import ConfigDict
    model = make(tiny_clip).eval()
    x = random_images(2, 64, 96)
    whole = model.predict(x, samples(labels()[:, :, :1].expand(2, 64, 96)))
    model.test_cfg = ConfigDict(mode='slide', crop_size=(64, 64), stride=(32, 32), return_logits=True)
    slide = model.predict(x, samples(labels()[:, :, :1].expand(2, 64, 96)))
    assert slide[1].seg_logits.data.shape == whole[1].seg_logits.data.shape == (4, 64, 96)
    sizes = (model.num_classes, model.out_channels, model.decode_head.num_classes, model.decode_head.out_channels)
    five = samples(labels()[:, :, :1].expand(2, 64, 96))
    for s in five:  # a vocabulary of this call only, carried by the samples
        s.set_metainfo(dict(vocabulary=['a', 'b', 'c', 'd', 'e']))
    assert model.predict(x, five)[0].seg_logits.data.shape == (5, 64, 96)
    assert (model.num_classes, model.out_channels, model.decode_head.num_classes,
            model.decode_head.out_channels) == sizes and len(model.vocabulary) == 4  # nothing resized per call


def test_clip_ensemble_weights(tiny_clip):
    model = make(tiny_clip).eval()
    x = random_images(2, 64, 64)
    head = model.predict(x, samples(labels()))[0].seg_logits.data
    model.clip_weight = (0.0, 1.0)  # the unseen class takes the training-free CLIP prediction only
    mixed = model.predict(x, samples(labels()))[0].seg_logits.data
    assert torch.allclose(mixed[:3], head.log_softmax(0)[:3], atol=1e-5)
    assert not torch.allclose(mixed[3], head.log_softmax(0)[3], atol=1e-3)
    with pytest.raises(ValueError, match='clip_weight'):
        make(tiny_clip, clip_weight=(0.5,))


REPO = __import__('pathlib').Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('name, n_seen, n_unseen', [('textseg_vit-b16_coco_stuff164k-zs156-512', 156, 15),
                                                     ('textseg_vit-b16_voc20-zs15-512', 15, 5)])
def test_zero_shot_split_configs(name, n_seen, n_unseen):
    """The COCO-Stuff 156/15 and VOC 15/5 configs: the split is dataset metadata and the model's unseen list."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(str(REPO / 'configs/textseg' / f'{name}.py'))
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    classes, novel = list(ds.metainfo['classes']), list(ds.metainfo['novel_classes'])
    assert len(classes) == n_seen + n_unseen and len(novel) == n_unseen and set(novel) <= set(classes)
    assert list(cfg.model.unseen) == novel and cfg.test_evaluator.type == 'OVZeroShotIoUMetric'
    train = cfg.train_dataloader.dataset
    for d in train.get('datasets', [train]):
        assert list(DATASETS.build(dict(d, lazy_init=True)).metainfo['novel_classes']) == novel


def test_synthetic_config_trains_and_reports_seen_unseen(tmp_path):
    """configs/synthetic/textseg_tinyclip_synthetic-128.py through the Runner: 3 iterations, then a test."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    from ovdense.datasets.synthetic import WorldConfig, export
    export(tmp_path / 'data', split='train', num_images=8, seed=5, cfg=WorldConfig(size=64), progress=False)
    # seed 8: the held-out scenes hold unseen objects (hexagon, star), so mIoU_unseen is measured
    export(tmp_path / 'data', split='val', num_images=4, seed=8, cfg=WorldConfig(size=64), progress=False)
    cfg = Config.fromfile(str(REPO / 'configs/synthetic/textseg_tinyclip_synthetic-128.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.update(batch_size=2)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'data/train')
    cfg.test_dataloader.dataset.data_root = cfg.val_dataloader.dataset.data_root = str(tmp_path / 'data/val')
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.train_cfg.update(max_iters=3, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 3
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'mIoU_seen', 'mIoU_unseen', 'hIoU', 'IoU.star'} <= set(metrics)
    # the metric from the model's own predictions over the same data, counted here
    import numpy as np
    names = runner.test_dataloader.dataset.metainfo['classes']
    inter, union = np.zeros(len(names)), np.zeros(len(names))
    with torch.no_grad():
        for data in runner.test_dataloader:
            for out in runner.model.test_step(data):
                pred, gt = out.pred_sem_seg.data[0].numpy(), out.gt_sem_seg.data[0].numpy()
                valid = gt != 255
                for k in range(len(names)):
                    inter[k] += ((pred == k) & (gt == k) & valid).sum()
                    union[k] += (((pred == k) | (gt == k)) & valid).sum()
    iou = {n: 100 * inter[k] / union[k] for k, n in enumerate(names) if union[k] > 0}
    assert len(iou) >= 4

    def same(a, b):  # NaN when no class of the group is present, in prediction or ground truth
        return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=0.01)

    unseen = cfg.model.unseen
    mean = lambda vals: float(np.mean(vals)) if vals else float('nan')  # noqa: E731
    assert same(metrics['mIoU_seen'], mean([iou[n] for n in names if n not in unseen and n in iou]))
    assert same(metrics['mIoU_unseen'], mean([iou[n] for n in unseen if n in iou]))
    assert not np.isnan(metrics['mIoU_unseen'])
    for n in iou:
        assert metrics[f'IoU.{n}'] == pytest.approx(iou[n], abs=0.01), n
