# vanilla on cityscapes: protocol of plain CLIP patch tokens with the SCLIP protocol (baseline)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes_560.py']
model = dict(
    backbone=dict(method=dict(type='OVVanilla')),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
