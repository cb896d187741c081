# sclip on ade20k: protocol of SCLIP configs/cfg_ade20k.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/ade20k.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='ade20k')))
