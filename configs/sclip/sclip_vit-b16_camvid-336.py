# sclip on camvid: protocol of SCLIP configs/cfg_camvid.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/camvid.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='camvid')))
