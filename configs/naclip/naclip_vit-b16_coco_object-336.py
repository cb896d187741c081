# naclip on coco_object: protocol of NACLIP configs/cfg_coco_object.py @ 0cac3a6
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/coco_object.py']
model = dict(
    backbone=dict(method=dict(type='OVNACLIP', std=5.0)),
    pamr=dict(num_iter=10, dilations=(8, 16)),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/coco_object_sclip.txt')),
    prob_thd=0.1)
