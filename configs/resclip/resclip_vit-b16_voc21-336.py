# resclip on voc21: protocol of ResCLIP configs/cfg_voc21.py @ 0e085f7 (README main setting: wo_resi, resclip)
# reference_quirks=True in model.backbone.method reproduces the reference's fp16 SFR, partial path check, flat blur
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    backbone=dict(method=dict(type='OVResCLIP', std=5.0, temp_thd=0.5, rcs_weights=[2.0, 0.3], sfr_weights=[2.2, 0.7])),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/voc21_sclip.txt')),
    prob_thd=0.1,
    slide_crop=0)
