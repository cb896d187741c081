# scclip on cityscapes: protocol of SC-CLIP configs/cfg_city_scapes.py @ 0417ba9
# reference_quirks=True in model.backbone.method reproduces the reference's own LOF (squared distances, the point's own k-distance)
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/cityscapes_560.py']
model = dict(
    backbone=dict(method=dict(type='OVSCCLIP', pre_adjust_idx=8, post_adjust_idx=3, multi_start_idx=3,
                              multi_end_idx=10, res_cls=0.3)),
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/cityscapes_sclip.txt')))
