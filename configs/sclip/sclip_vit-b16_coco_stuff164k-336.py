# sclip on coco_stuff164k: protocol of SCLIP configs/cfg_coco_stuff164k.py @ b56bd30
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_stuff164k.py']
model = dict(
    backbone=dict(method=dict(type='OVSCLIP')),
    text_encoder=dict(vocabulary=dict(dataset='coco_stuff171')))
