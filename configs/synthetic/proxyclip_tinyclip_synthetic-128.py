# Training-free zero-shot segmentation of the synthetic world with the shipped tiny CLIP, ProxyCLIP mode, the
# shipped tiny self-supervised VFM (configs/synthetic/tinyvfm_vit-t8_synthetic-128.py) as the proxy.
# python tools/test.py configs/synthetic/proxyclip_tinyclip_synthetic-128.py --show-dir vis
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/synthetic.py']
assets = '{{fileDirname}}/../../ovdense/assets/'
model = dict(
    backbone=dict(mode='proxyclip', clip=dict(_delete_=True, config_file=assets + 'tinyclip_synthetic.json',
                                          checkpoint=assets + 'tinyclip_synthetic.safetensors'),
                  proxy=dict(config_file=assets + 'tinyvfm_synthetic.json',
                             checkpoint=assets + 'tinyvfm_synthetic.safetensors'),
                  proxy_beta=1.2, proxy_gamma=3.0),
    vocabulary=['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring',
                'diamond', 'hexagon', 'crescent', 'arrow', 'heart', 'pentagon'],
    templates=['a picture with a {}.'],
    logit_scale=40.0,
    slide_crop=0)
