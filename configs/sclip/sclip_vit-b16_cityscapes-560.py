# sclip on cityscapes: protocol of SCLIP configs/cfg_cityscapes.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes_560.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
