# sclip on voc21: protocol of SCLIP configs/cfg_voc21.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/voc21_sclip.txt')),
    logit_scale=65,
    prob_thd=0.1,
    area_thd=0.1)
