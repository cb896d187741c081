# sclip on context60: protocol of SCLIP configs/cfg_context60.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context60.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='context60')),
    logit_scale=50,
    prob_thd=0.1)
