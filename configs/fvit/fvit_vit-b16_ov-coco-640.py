# OV-COCO (48 base / 17 novel, OVR-CNN split) with F-ViT ViT-B/16, the reference schedule: 640 px,
# large-scale jitter 0.1-2.0, AdamW 1e-4 (wd 0.1), 3 epochs at batch 64 (8 GPUs x 8). Training file
# annotates base classes only, all 65 class embeddings are in the classifier (novel ones as negatives);
# OVCocoMetric reports box AP50 on novel / base / all classes.
#   bash tools/dist_train.sh configs/fvit/fvit_vit-b16_ov-coco-640.py 8
_base_ = ['../_base_/models/fvit_vit-b16.py']
from ovdense.datasets.det import OV_COCO_BASE, OV_COCO_CLASSES  # noqa: E402
model = dict(text_encoder=dict(vocabulary=list(OV_COCO_CLASSES)),
             roi_head=dict(bbox_head=dict(base_classes=list(OV_COCO_BASE))))
data_root = 'data/coco/'
image_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='OVCocoDataset', data_root=data_root,
                 ann_file='zero-shot/instances_train2017_seen_2_65_cat.json',
                 data_prefix=dict(img='train2017/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OVCocoDataset', data_root=data_root, ann_file='zero-shot/instances_val2017_all_2.json',
                 data_prefix=dict(img='val2017/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVCocoMetric', ann_file=data_root + 'zero-shot/instances_val2017_all_2.json',
                     metric='bbox', format_only=False)
test_evaluator = val_evaluator
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
                     clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=250)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                     backend_args=dict(backend='ov_atomic_local')))
auto_scale_lr = dict(enable=False, base_batch_size=64)
