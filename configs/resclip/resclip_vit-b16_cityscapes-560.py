# resclip on cityscapes: protocol of ResCLIP configs/cfg_city_scapes.py @ 0e085f7 (README main setting: wo_resi, resclip)
# reference_quirks=True in model.backbone.method reproduces the reference's fp16 SFR, partial path check, flat blur
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes_560.py']
model = dict(
    backbone=dict(method=dict(type='OVResCLIP', std=5.0, temp_thd=0.1, rcs_weights=[2.0, 0.2], sfr_weights=[2.1, 0.6])),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
