# vanilla on voc21: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    backbone=dict(method=dict(type='OVVanilla')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/voc21_sclip.txt')),
    logit_scale=65,
    prob_thd=0.1,
    area_thd=0.1)
