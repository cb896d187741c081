# OV-COCO detection data (OVR-CNN split: 48 base / 17 novel classes, the dataset's metainfo): the training file
# annotates base classes only; 640 px, large-scale jitter 0.1-2.0; OVCocoMetric reports box AP50 on novel / base /
# all classes. The detector's side of the protocol (65-class vocabulary, novel logits masked out of the training
# softmax, background weight) is in each configs/fvit/*_ov-coco-*.py.
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
    # 'text': the classes of DetInferencer(texts=...), as mmdet's grounding configs pack it
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text')),
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
