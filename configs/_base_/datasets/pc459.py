# PASCAL Context validation with all 459 classes (PC-459), in the layout of CAT-Seg's
# datasets/prepare_pascal_context_459.py: JPEGImages/*.jpg, annotations_detectron2/pc459_val/*.tif (uint16: the
# LabelMap of trainval/*.mat minus 1), the image list pascalcontext_val.txt (CAT-Seg's datasets/ folder) in data_root.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    dict(type='OVLoadWideAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OVPascalContext459Dataset', data_root='data/VOCdevkit/VOC2010', pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=459)
val_evaluator = test_evaluator
