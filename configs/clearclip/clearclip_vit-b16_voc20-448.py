# clearclip on voc20: protocol of ClearCLIP configs/cfg_voc20.py @ ad68a40
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc20.py']
model = dict(
    backbone=dict(method=dict(type='OVClearCLIP')),
    window_padding='symmetric',
    logit_scale=50.0,
    slide_crop=448,
    slide_stride=224,
    text_encoder=dict(vocabulary=dict(dataset='voc20')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
