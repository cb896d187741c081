# Training-free zero-shot segmentation of the synthetic world with the shipped tiny CLIP, scclip method.
# The tiny CLIP has 4 blocks (outputs F_1..F_3 before the last): LOF and repair on F_3 as the reference (F_11 of 12),
# the similarity from F_2, the post adjustment from F_1, the multi-level sum F_1..F_3.
# python tools/test.py configs/synthetic/scclip_tinyclip_synthetic-128.py --show-dir vis
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/synthetic.py']
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
model = dict(
    backbone=dict(method=dict(type='OVSCCLIP', pre_adjust_idx=1, post_adjust_idx=0, multi_start_idx=0, multi_end_idx=3),
                  clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC)),
    text_encoder=dict(vocabulary=['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']),
    logit_scale=40.0,
    slide_crop=0)
