# vanilla on context59: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context59.py']
model = dict(
    backbone=dict(method=dict(type='OVVanilla')),
    text_encoder=dict(vocabulary=dict(dataset='context59')))
