# Training-free zero-shot segmentation of the synthetic world with the shipped tiny CLIP, resclip method.
# The tiny CLIP has 4 blocks: RCS averages blocks 1-2 (the reference: the middle blocks 5-8 of 12); the other knobs are
# ResCLIP's ADE20K protocol (temp_thd 0.25, RCS (2.0, 0.3), SFR (2.1, 0.7)); NACLIP's renormalisation.
# python tools/test.py configs/synthetic/resclip_tinyclip_synthetic-128.py --show-dir vis
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/synthetic.py']
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
model = dict(
    backbone=dict(method=dict(type='OVResCLIP', rcs_blocks=(1, 2), temp_thd=0.25, rcs_weights=[2.0, 0.3],
                              sfr_weights=[2.1, 0.7]),
                  clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC)),
    text_encoder=dict(vocabulary=['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']),
    renormalize=True,
    logit_scale=40.0,
    slide_crop=0)
