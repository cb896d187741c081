# proxyclip on ade20k: protocol of ProxyCLIP configs/cfg_ade20k.py @ e7b767f.
# DINO ViT-B/8 proxy through timm (the DINO hub weights' keys load unchanged): without a local file in
# model.backbone.proxy.checkpoint, timm's 'vit_base_patch8_224.dino' weights must be in the Hugging Face cache.
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/ade20k.py']
model = dict(
    backbone=dict(method=dict(type='OVProxyCLIP', proxy=dict(model_name='vit_base_patch8_224.dino', checkpoint=None), beta=1.2, gamma=3.0)),
    window_padding='symmetric',
    window_pad_multiple=56,
    logit_scale=40.0,
    prob_thd=0.0,
    slide_crop=336,
    slide_stride=112,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/ade20k_proxyclip.txt')))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
