# Self-supervised pretraining of a tiny vision foundation model on the synthetic world (no labels): patch-level
# self-distillation (DINO's teacher-student recipe on patch tokens, the two views' geometry giving the
# correspondences), to serve as ProxyCLIP's proxy next to the shipped tiny CLIP.
# python tools/train.py configs/synthetic/tinyvfm_vit-t8_synthetic-128.py
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
default_scope = 'mmseg'

model = dict(
    type='OVVFMPretrainer',
    model_name='vit_base_patch8_224.dino',  # DINO's ViT-B/8 architecture, tiny: width 96, 4 blocks, 3 heads
    model_kwargs=dict(embed_dim=96, depth=4, num_heads=3, img_size=96),
    prototypes=64,
    student_temp=0.1,
    teacher_temp=0.05,
    momentum=0.99)

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='OVSyntheticViewsDataset', num_images=20000, seed=5000, image_size=128, view_size=96,
                 scale=(0.3, 1.0), gray_prob=0.2))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.04, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=3.0))
max_iters = 2000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=500, by_epoch=False, max_keep_ckpts=2,
                    backend_args=dict(backend='ov_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
custom_hooks = [dict(type='OVExportCLIPHook', name='tinyvfm_synthetic', interval=500, dtype='float16')]
