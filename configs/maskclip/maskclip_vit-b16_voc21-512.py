# maskclip on voc21: protocol of MaskCLIP configs/maskclip/ @ 245d31f (no reference config for this dataset: MaskCLIP defaults)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    # MaskCLIP as configured: ImageNet mean/std, exact GELU and LayerNorm eps 1e-6 in its ViT port,
    # zero-padded patch embedding, bicubic position resize by size, whole-image inference, no scale
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(method=dict(type='OVMaskCLIP'), pos_interp='bicubic', patch_padding='corner', ln_eps=1e-6, act='gelu'),
    text_encoder=dict(templates='maskclip', vocabulary=dict(dataset='voc21')),
    logit_scale=1.0,
    slide_crop=0)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
