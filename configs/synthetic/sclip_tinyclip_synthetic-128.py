# Training-free zero-shot segmentation of the synthetic world with the shipped tiny CLIP, sclip mode.
# python tools/test.py configs/synthetic/sclip_tinyclip_synthetic-128.py --show-dir vis
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/synthetic.py']
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
model = dict(
    backbone=dict(method=dict(type='OVSCLIP'), clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC)),
    text_encoder=dict(vocabulary=['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']),
    logit_scale=40.0,
    slide_crop=0)
