# resclip on coco_object: protocol of ResCLIP configs/cfg_coco_object.py @ 0e085f7 (README main setting: wo_resi, resclip)
# reference_quirks=True in model.backbone.method reproduces the reference's fp16 SFR, partial path check, flat blur
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_object.py']
model = dict(
    backbone=dict(method=dict(type='OVResCLIP', std=5.0, temp_thd=0.11, rcs_weights=[2.0, 0.4], sfr_weights=[1.8, 0.7])),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/coco_object_sclip.txt')),
    prob_thd=0.1)
