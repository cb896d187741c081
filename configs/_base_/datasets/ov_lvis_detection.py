# OV-LVIS data (rare categories = novel: the dataset's metainfo from the annotation file's frequencies): rare-category
# instances dropped from the LVIS v1 train file; 1024 px, large-scale jitter 0.1-2.0; OVLVISMetric (mmdet's
# LVISMetric) reports box and mask AP, APr (novel), APc, APf. The detector's side of the protocol (1203-class
# vocabulary, class-agnostic mask head, masked novel logits, background weight) is in each configs/fvit/*_ov-lvis-*.py.
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
    # 'text': the classes of DetInferencer(texts=...), as mmdet's grounding configs pack it
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text')),
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
