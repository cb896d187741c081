# resclip on context60: protocol of ResCLIP configs/cfg_context60.py @ 0e085f7 (README main setting: wo_resi, resclip)
# reference_quirks=True in model.backbone.method reproduces the reference's fp16 SFR, partial path check, flat blur
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/context60.py']
model = dict(
    backbone=dict(method=dict(type='OVResCLIP', std=5.0, temp_thd=0.3, rcs_weights=[2.0, 0.3], sfr_weights=[1.8, 0.7])),
    renormalize=True,
    text_encoder=dict(vocabulary=dict(dataset='context60')),
    prob_thd=0.1)
