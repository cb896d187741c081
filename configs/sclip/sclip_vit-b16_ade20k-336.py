# sclip on ade20k: protocol of SCLIP configs/cfg_ade20k.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/ade20k.py']
model = dict(
    backbone=dict(mode='sclip'),
    text_encoder=dict(vocabulary=dict(dataset='ade20k')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
