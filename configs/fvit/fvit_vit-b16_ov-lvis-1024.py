# OV-LVIS (rare categories = novel) with F-ViT ViT-B/16 + class-agnostic mask head, the reference
# schedule: 1024 px, jitter 0.1-2.0, AdamW 1e-4 (wd 0.1, grad clip 1.0), 48 epochs at batch 64, VLM
# fusion alpha=0.1 / beta=0.6 / temperature 50. Training drops rare-category instances from the LVIS v1
# train file; OVLVISMetric (mmdet's LVISMetric) reports mask AP, APr (novel), APc, APf.
#   bash tools/dist_train.sh configs/fvit/fvit_vit-b16_ov-lvis-1024.py 8
_base_ = ['../_base_/models/fvit_vit-b16.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    text_encoder=dict(vocabulary=dict(dataset='lvis')),
    roi_head=dict(
        bbox_head=dict(vlm_temperature=50.0, alpha=0.1, beta=0.6),
        mask_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
                                out_channels=256, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256, num_classes=1203,
                       class_agnostic=True, norm_cfg=norm_cfg,
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True), mask_size=28)),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                            mask_thr_binary=0.5)))
data_root = 'data/lvis_v1/'
image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='OVLVISV1Dataset', data_root=data_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), drop_novel=True, filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OVLVISV1Dataset', data_root=data_root, ann_file='annotations/lvis_v1_val.json',
                 data_prefix=dict(img=''), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVLVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=48, by_epoch=True, milestones=[32, 44], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=48, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                     backend_args=dict(backend='ov_atomic_local')))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVBaseClassesFromDatasetHook')]
auto_scale_lr = dict(enable=True, base_batch_size=64)
