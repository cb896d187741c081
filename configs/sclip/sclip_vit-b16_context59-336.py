# sclip on context59: protocol of SCLIP configs/cfg_context59.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context59.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='context59')))
