# clearclip on cityscapes: protocol of ClearCLIP configs/cfg_cityscapes.py @ ad68a40
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes.py']
model = dict(
    backbone=dict(method=dict(type='OVClearCLIP')),
    window_padding='symmetric',
    logit_scale=50.0,
    slide_crop=224,  # ClearCLIP's Cityscapes config uses 224 windows (stride stays 224)
    slide_stride=224,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
