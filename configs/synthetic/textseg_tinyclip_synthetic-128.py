# Trained open-vocabulary segmentation on the synthetic world: frozen tiny CLIP (maskclip dense map +
# blocks 1, 2), a small conv head whose classifier is the text embedding of the vocabulary. Trained on
# the seen classes (4 stuff + 9 base objects; novel pixels ignored, novel logits out of the softmax),
# tested with all 16 classes: mIoU seen / unseen / hIoU.
#   python tools/make_synthetic.py --out data/synthetic --split train --num-images 2000 --seed 3000
#   python tools/make_synthetic.py --out data/synthetic --split val --num-images 200 --seed 2000
#   python tools/train.py configs/synthetic/textseg_tinyclip_synthetic-128.py
#   python tools/test.py configs/synthetic/textseg_tinyclip_synthetic-128.py work_dirs/.../iter_1500.pth
_base_ = ['mmseg::_base_/default_runtime.py', '../_base_/datasets/synthetic.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
visualizer = dict(type='OVSegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
classes = ['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond',
           'hexagon', 'crescent', 'arrow', 'heart', 'pentagon']
model = dict(
    type='OVTextSegmentor',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(128, 128)),
    backbone=dict(type='OVCLIPViT', method=dict(type='OVMaskCLIP'), out_indices=(1, 2), frozen=True,
                  clip=dict(**TINYCLIP_SYNTHETIC)),
    decode_head=dict(type='OVTextSegHead', in_channels=[192, 192, 128], channels=128, embed_dim=128, num_convs=2,
                     dropout_ratio=0.0, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    text_encoder=dict(vocabulary=classes, templates=['a picture with a {}.']),
    unseen=['star', 'hexagon', 'heart'],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='OVSyntheticSegDataset', data_root='data/synthetic/train', pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
max_iters = 1500
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    backend_args=dict(backend='ov_atomic_local')))
custom_hooks = [dict(type='OVInitWeightsHook')]
log_processor = dict(by_epoch=False)
