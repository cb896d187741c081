# sclip on voc20: protocol of SCLIP configs/cfg_voc20.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc20.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='voc20')))
