# DeCLIP on the synthetic world at the tiny CLIP's native 128 px (8 x 8 patches): CLIPSelf's proposal recipe of
# clipself_tinyclip_synthetic-proposals-128.py (same boxes, crops, schedule, 1200 iterations) plus DeCLIP's context
# loss with the shipped tiny VFM (a DINO-style ViT/8 trained on the same world without labels, at 8 x 8 = 64 px for
# the student's 8 x 8 grid). The student's last block is DeCLIP's q-q attention (no residual, no FFN), its dense map
# RoI-pooled before normalisation, as the reference.
#   python tools/train.py configs/synthetic/declip_tinyclip_synthetic-proposals-128.py
#   python tools/test.py configs/synthetic/declip_tinyclip_synthetic-proposals-128.py \
#       --load-from work_dirs/declip_tinyclip_synthetic-proposals-128/iter_1200.pth
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/synthetic_clipself.py']
from ovdense.assets import TINYCLIP_SYNTHETIC, TINYVFM_SYNTHETIC  # noqa: E402
model = dict(
    clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC),
    method=dict(_delete_=True, type='OVDeCLIP', attention='qq'),
    normalize_dense=False,
    text_encoder=dict(vocabulary=['circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond', 'hexagon', 'crescent',
                'arrow', 'heart', 'pentagon'], templates=['a picture with a {}.']),
    losses=[dict(type='OVRegionCosineLoss', weight=1.0), dict(type='OVContextLoss', weight=0.1, vfm=TINYVFM_SYNTHETIC)])
max_iters = 1200
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=0.0),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=600), logger=dict(interval=20))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='tinyclip_declip_p128')]
train_dataloader = dict(dataset=dict(mode='proposals', max_boxes=20, min_size=8, max_size=1024, input_size=128))
test_dataloader = dict(dataset=dict(input_size=128))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
