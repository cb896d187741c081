# F-ViT on the synthetic world: the shipped tiny CLIP frozen (blocks 0-3 -> pyramid, naclip dense map for
# VLM fusion: the best training-free mode of this CLIP), a light FPN / RPN / 2-fc text box head, trained on
# the 9 base object classes (novel instances dropped), tested on all 12 (box AP50 base / novel / all), at
# the native 128 px (anchors 16-256 px).
#   python tools/make_synthetic.py --out data/synthetic --split train --num-images 2000 --seed 3000
#   python tools/make_synthetic.py --out data/synthetic --split val --num-images 200 --seed 2000
#   python tools/train.py configs/synthetic/fvit_tinyclip_synthetic-128.py
#   python tools/test.py configs/synthetic/fvit_tinyclip_synthetic-128.py work_dirs/fvit_tinyclip_synthetic-128/iter_1200.pth
#   (+ --cfg-options model.roi_head.vlm_roi_extractor=None: without VLM score fusion)
# Measured with the shipped tiny CLIP (1200 iterations, ~30 min on 2 cores alone): box AP50 base / novel 81.3 /
# 16.1 without fusion, 73.4 / 12.4 with it; with the CLIPSelf-128 CLIP 80.5 / 15.3 and 76.5 / 25.2 (README).
_base_ = ['../_base_/models/fvit_vit-b16.py']
from ovdense.datasets.synthetic import BASE_CLASSES, NOVEL_CLASSES, OBJECT_CLASSES  # noqa: E402
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
bn = dict(type='BN', requires_grad=True)
split = dict(classes=list(OBJECT_CLASSES), base_classes=list(BASE_CLASSES), novel_classes=list(NOVEL_CLASSES))
model = dict(
    text_encoder=dict(vocabulary=list(OBJECT_CLASSES), templates=['a picture with a {}.']),
    backbone=dict(clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC),
                  out_indices=(0, 1, 2, 3), method=dict(type='OVNACLIP'), norm_cfg=bn),
    neck=dict(in_channels=[192] * 4, out_channels=128, norm_cfg=bn),
    rpn_head=dict(in_channels=128, feat_channels=128, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        vlm_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_shared_convs=0, num_shared_fcs=2, embed_dim=128,
                       norm_cfg=bn, base_classes=list(BASE_CLASSES), vlm_temperature=None)),  # the CLIP's own (16.5)
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),  # the native size; records scale_factor
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    # 'text': the classes of DetInferencer(texts=...), as mmdet's grounding configs pack it
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text')),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='OVCocoDataset', data_root='data/synthetic/train', ann_file='instances.json',
                 data_prefix=dict(img='images/'), metainfo=split, drop_novel=True,
                 filter_cfg=dict(filter_empty_gt=True), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OVCocoDataset', data_root='data/synthetic/val', ann_file='instances.json',
                 data_prefix=dict(img='images/'), metainfo=split, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVCocoMetric', ann_file='data/synthetic/val/instances.json', metric='bbox')
test_evaluator = val_evaluator
max_iters = 1200
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
                     clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', milestones=[1000], gamma=0.1, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    backend_args=dict(backend='ov_atomic_local')))
log_processor = dict(by_epoch=False)
