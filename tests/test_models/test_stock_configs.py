"""ovdense backbones in stock OpenMMLab configs: mmseg's FPN and UPerNet-ViT, mmdet's RetinaNet and Cascade R-CNN run
training iterations and a prediction with only ``backbone=`` and the neck's ``in_channels`` changed (and mmseg's
model-level ``pretrained``, which names ResNet-50 weights; the UPerNet test also shrinks the head widths)."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmseg.structures import SegDataSample

import ovdense.detection  # noqa: F401  (the shared backbones into mmdet's registry too)
from ovdense.testing import TINY_CLIP_CFG, random_images

TINY4 = dict(model_cfg=dict(TINY_CLIP_CFG, vision_cfg=dict(TINY_CLIP_CFG['vision_cfg'], layers=4)))
BACKBONES = {
    'OVFViTBackbone': dict(type='OVFViTBackbone', clip=TINY4, out_indices=(0, 1, 2, 3)),
    'OVDenseCLIPViT': dict(type='OVDenseCLIPViT', clip=TINY4, out_indices=(0, 1, 2, 3)),
}


def _one_iteration(model, inputs, samples) -> dict:
    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)))
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    losses, log = model.parse_losses(model.loss(inputs, samples))
    optim.update_params(losses)
    after = [p for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(losses) and any(not torch.equal(a, b) for a, b in zip(after, before))
    return log


def _seg_samples() -> list:
    """Two 64 x 64 segmentation samples with random labels of 19 classes."""
    samples = []
    for _ in range(2):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 19, (1, 64, 64))))
        s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(s)
    return samples


def _det_samples() -> list:
    """Two 128 x 128 detection samples with two boxes each."""
    samples = []
    for i in range(2):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(128, 128), ori_shape=(128, 128), pad_shape=(128, 128), scale_factor=(1.0, 1.0),
                            batch_input_shape=(128, 128)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10.0, 12.0, 70.0, 90.0], [40.0, 30.0, 120.0, 100.0]]),
                                      labels=torch.tensor([i, 5]))
        samples.append(s)
    return samples


@pytest.mark.parametrize('backbone', sorted(BACKBONES))
def test_stock_mmseg_fpn(backbone):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = get_config('mmseg::_base_/models/fpn_r50.py')
    cfg.model.backbone = BACKBONES[backbone]
    cfg.model.neck.in_channels = [64] * 4
    cfg.model.pretrained = None  # the stock config names ResNet-50 weights; the CLIP weights come from clip=
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # as mmengine's Runner does in one process
    model.init_weights()
    model.train()
    x, samples = random_images(2, 64, 64), _seg_samples()
    log = _one_iteration(model, x, samples)
    assert 'decode.loss_ce' in log
    model.eval()
    with torch.no_grad():
        out = model.predict(x, samples)
    assert out[1].pred_sem_seg.data.shape == (1, 64, 64) and out[1].seg_logits.data.shape == (19, 64, 64)


def test_stock_mmdet_retinanet():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_config('mmdet::_base_/models/retinanet_r50_fpn.py')
    cfg.model.backbone = BACKBONES['OVFViTBackbone']
    cfg.model.neck.in_channels = [64] * 4
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    x, samples = random_images(2, 128, 128), _det_samples()
    log = _one_iteration(model, x, samples)
    assert {'loss_cls', 'loss_bbox'} <= set(log)
    assert all(p.grad is None for p in model.backbone.vit.parameters())  # the CLIP stays frozen
    model.eval()
    model.test_cfg.score_thr = 0.0  # one iteration of training: keep every box so there are some to check
    with torch.no_grad():
        out = model.predict(x, samples)
    assert out[0].pred_instances.bboxes.shape[1] == 4 and len(out[0].pred_instances) > 0


def test_stock_mmseg_upernet_vit_with_ovclipvit():
    """mmseg's ``upernet_vit-b16_ln_mln`` with OVCLIPViT: its 4 block maps and the text-space dense map (5 outputs)
    into the multi-level neck (``in_channels`` = 4 x the tower width + the CLIP's embedding width, the README's rule);
    two training iterations and a prediction."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = get_config('mmseg::_base_/models/upernet_vit-b16_ln_mln.py')
    cfg.model.backbone = dict(type='OVCLIPViT', clip=TINY4, out_indices=(0, 1, 2, 3), frozen=False)
    cfg.model.neck.in_channels = [64] * 4 + [32]
    cfg.model.neck.out_channels = 64
    cfg.model.decode_head.update(in_channels=[64] * 4, channels=32)
    cfg.model.auxiliary_head.update(in_channels=64, channels=32)
    cfg.model.pretrained = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.train()
    x, samples = random_images(2, 64, 64), _seg_samples()
    for _ in range(2):
        log = _one_iteration(model, x, samples)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log)
    model.eval()
    with torch.no_grad():
        out = model.predict(x, samples)
    assert out[1].pred_sem_seg.data.shape == (1, 64, 64) and out[1].seg_logits.data.shape == (19, 64, 64)


def test_stock_mmdet_cascade_rcnn_with_fvit_backbone():
    """mmdet's ``cascade-rcnn_r50_fpn`` with OVFViTBackbone (only ``backbone=`` and the neck's ``in_channels``): two
    training iterations (RPN + 3 cascade stages) and a prediction."""
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_config('mmdet::_base_/models/cascade-rcnn_r50_fpn.py')
    cfg.model.backbone = BACKBONES['OVFViTBackbone']
    cfg.model.neck.in_channels = [64] * 4
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    x, samples = random_images(2, 128, 128), _det_samples()
    for _ in range(2):
        log = _one_iteration(model, x, samples)
    assert {'loss_rpn_cls', 's0.loss_cls', 's2.loss_bbox'} <= set(log)
    model.eval()
    with torch.no_grad():
        out = model.predict(x, samples)
    assert out[0].pred_instances.bboxes.shape[1] == 4
