# CLIPSelf on the synthetic world, proposal mode: the ground-truth boxes of the training split as proposals
# (teacher crops enlarged 1.5x about the box, area filter 8..1024 px, at most 20 boxes, as the reference).
#   python tools/train.py configs/synthetic/clipself_tinyclip_synthetic-proposals-256.py
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/synthetic_clipself.py']
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
model = dict(
    clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC),
    text_encoder=dict(vocabulary=['circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond', 'hexagon', 'crescent',
                'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']))
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=0.0),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=200), logger=dict(interval=20))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='tinyclip_clipself_proposals')]
train_dataloader = dict(dataset=dict(mode='proposals', max_boxes=20, min_size=8, max_size=1024))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
