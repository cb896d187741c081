# naclip on cityscapes: protocol of NACLIP configs/cfg_cityscapes.py @ 0cac3a6
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes_560.py']
model = dict(
    backbone=dict(method=dict(type='OVNACLIP', std=5.0)),
    pamr=dict(num_iter=10, dilations=(8, 16)),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
