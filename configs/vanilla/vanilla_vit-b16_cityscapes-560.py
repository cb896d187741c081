# vanilla on cityscapes: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes.py']
model = dict(
    backbone=dict(method=dict(type='OVVanilla')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 560), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
