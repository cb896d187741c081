# Pretrain a tiny CLIP from scratch on the synthetic open-vocabulary world (CPU, 2 cores).
# python tools/train.py configs/synthetic/tinyclip_vit-t16_synthetic-128.py
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
default_scope = 'mmseg'

tiny_clip = dict(
    embed_dim=128,
    quick_gelu=True,
    vision_cfg=dict(image_size=128, layers=4, width=192, head_width=64, patch_size=16),
    text_cfg=dict(context_length=32, vocab_size=49408, width=128, heads=2, layers=3))
model = dict(
    type='OVCLIPPretrainer',
    model_cfg=tiny_clip,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323]))

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='OVSyntheticCaptionDataset', num_images=40000, seed=0, image_size=128, max_objects=3,
                 single_fraction=0.5, style_probs=(0.2, 0.15, 0.5, 0.15), gray_prob=0.2, semantic_keys=True,
                 cache_dir='work_dirs/cache'))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6),
    clip_grad=dict(max_norm=1.0))
# 60 min on 2 cores; zero-shot top-1 14.7 / 34.0 / 56.9 / 71.4 / 80.2 / 84.7 / 85.5% every 500 iterations
# (1.5x box crops, padded as CLIPSelf's reference: 9.4 / ... / 28.0 / 37.4 / 37.6 / 34.9%; square crops at the end 77%)
max_iters = 3500
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=300, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=500, by_epoch=False, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
custom_hooks = [dict(type='OVExportCLIPHook', name='tinyclip_synthetic', interval=500, dtype='float16'),
                dict(type='OVSyntheticZeroShotHook', interval=500),
                # scale curriculum: forms first at the rendering scale, then zoomed views (1-4x) like region crops
                dict(type='OVZoomCurriculumHook', begin=2000, zoom=(1.0, 4.0), zoom_prob=0.5)]
