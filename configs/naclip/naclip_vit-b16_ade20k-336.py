# naclip on ade20k: protocol of NACLIP configs/cfg_ade20k.py @ 0cac3a6
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/ade20k.py']
model = dict(
    backbone=dict(method=dict(type='OVNACLIP', std=5.0)),
    pamr=dict(num_iter=10, dilations=(8, 16)),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(dataset='ade20k')))
