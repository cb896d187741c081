# sclip on coco_object: protocol of SCLIP configs/cfg_coco_object.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_object.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/coco_object_sclip.txt')),
    logit_scale=50,
    prob_thd=0.1)
