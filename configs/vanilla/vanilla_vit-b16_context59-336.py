# vanilla on context59: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context59.py']
model = dict(
    backbone=dict(mode='vanilla'),
    text_encoder=dict(vocabulary=dict(dataset='context59')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
