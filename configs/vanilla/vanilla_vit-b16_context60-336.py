# vanilla on context60: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context60.py']
model = dict(
    backbone=dict(method=dict(type='OVVanilla')),
    text_encoder=dict(vocabulary=dict(dataset='context60')),
    logit_scale=50,
    prob_thd=0.1)
