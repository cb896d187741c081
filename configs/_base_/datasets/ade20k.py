_base_ = ['mmseg::_base_/datasets/ade20k.py']
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
    dataset=dict(type='ADE20KDataset', data_root='data/ade/ADEChallengeData2016', data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'), reduce_zero_label=True, pipeline=test_pipeline))
val_dataloader = test_dataloader
