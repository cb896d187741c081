# Training-free zero-shot segmentation of the synthetic world with the shipped tiny CLIP, ProxyCLIP mode, the
# shipped tiny self-supervised VFM (configs/synthetic/tinyvfm_vit-t8_synthetic-128.py) as the proxy.
# python tools/test.py configs/synthetic/proxyclip_tinyclip_synthetic-128.py --show-dir vis
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/synthetic.py']
from ovdense.assets import TINYCLIP_SYNTHETIC, TINYVFM_SYNTHETIC  # noqa: E402
model = dict(
    backbone=dict(clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC),
                  method=dict(type='OVProxyCLIP', proxy=dict(**TINYVFM_SYNTHETIC), beta=1.2, gamma=3.0)),
    text_encoder=dict(vocabulary=['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']),
    logit_scale=40.0,
    slide_crop=0)
