_base_ = ['mmseg::_base_/datasets/pascal_context_59.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    # annotations are loaded after Resize: predictions are resized back to the original size
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010', data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'), ann_file='ImageSets/SegmentationContext/val.txt', reduce_zero_label=True, pipeline=test_pipeline))
val_dataloader = test_dataloader
