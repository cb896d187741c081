# clearclip on coco_object: protocol of ClearCLIP configs/cfg_coco_object.py @ ad68a40
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_object.py']
model = dict(
    backbone=dict(method=dict(type='OVClearCLIP')),
    window_padding='symmetric',
    logit_scale=50.0,
    slide_crop=448,
    slide_stride=224,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/coco_object_sclip.txt')),
    prob_thd=0.4)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
