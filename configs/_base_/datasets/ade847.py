# ADE20K-Full validation, 847 classes (ADE-847), in the layout of CAT-Seg's datasets/prepare_ade20k_full.py:
# images_detectron2/validation/*.jpg, annotations_detectron2/validation/*.tif (uint16 class indices, 65535 unlabelled),
# so labels load with OVLoadWideAnnotations (mmseg's LoadAnnotations casts to uint8) and the metric ignores 65535.
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
    dataset=dict(type='OVADE20KFullDataset', data_root='data/ADE20K_2021_17_01', pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], ignore_index=65535)
val_evaluator = test_evaluator
