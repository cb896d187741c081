# CAT-Seg on the synthetic world, next to the trained text head (textseg_tinyclip_synthetic-128.py: same data, 1500
# iterations at batch 16, the same seen / unseen split): the shipped tiny CLIP with its attention q / v weights
# fine-tuned (lr x 0.01) as the reference, blocks 1 and 2 as decoder guidance, an aggregator of the reference's shape
# at the tiny CLIP's sizes (hidden 64, 2 layers, 4 heads, 8 x 8 grid with Swin windows of 4; classes padded to the
# world's 16, not 256: the class attention's cost, 16x less on 2 cores), the whole 128 px image at once (the CLIP's
# native size).
#   python tools/train.py configs/synthetic/catseg_tinyclip_synthetic-128.py
#   python tools/test.py configs/synthetic/catseg_tinyclip_synthetic-128.py work_dirs/catseg_tinyclip_synthetic-128/iter_1500.pth
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/synthetic.py']
from ovdense.assets import TINYCLIP_SYNTHETIC  # noqa: E402
classes = ['grass', 'sand', 'water', 'snow', 'circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond',
           'hexagon', 'crescent', 'arrow', 'heart', 'pentagon']
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(clip=dict(_delete_=True, **TINYCLIP_SYNTHETIC), out_indices=(1, 2)),
    decode_head=dict(width=192, embed_dim=128, text_guidance_proj_dim=32, appearance_guidance_proj_dim=32,
                     decoder_dims=(32, 16), decoder_guidance_dims=(64, 32), decoder_guidance_proj_dims=(16, 8),
                     hidden_dim=64, feature_resolution=(8, 8), window_size=4, pad_len=16),
    text_encoder=dict(vocabulary=classes, templates=['a picture with a {}.']),
    unseen=['star', 'hexagon', 'heart'],
    clip_resolution=128,
    test_cfg=dict(mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='OVSyntheticSegDataset', data_root='data/synthetic/train', pipeline=train_pipeline))
max_iters = 1500
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min=0.0)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters), visualization=dict(draw=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
