# proxyclip on coco_stuff164k: protocol of ProxyCLIP configs/cfg_coco_stuff164k.py @ e7b767f.
# DINO ViT-B/8 proxy through timm (the DINO hub weights' keys load unchanged): without a local file in
# model.backbone.proxy.checkpoint, timm's 'vit_base_patch8_224.dino' weights must be in the Hugging Face cache.
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_stuff164k.py']
model = dict(
    backbone=dict(method=dict(type='OVProxyCLIP', proxy=dict(model_name='vit_base_patch8_224.dino', checkpoint=None), beta=1.2, gamma=3.0)),
    window_padding='symmetric',
    window_pad_multiple=56,
    logit_scale=40.0,
    prob_thd=0.0,
    slide_crop=336,
    slide_stride=112,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/coco_stuff164k_proxyclip.txt')))
