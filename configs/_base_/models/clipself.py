# CLIPSelf self-distillation of an OpenAI CLIP ViT-B/16 (open_clip), the reference recipe
# (wusize/CLIPSelf scripts: AdamW lr 1e-5, wd 0.1, 1000 warm-up iterations, 6 epochs, 8 GPUs x 2 images,
# student input 1024, teacher crops 224, grid max split 6 / max 6 boxes, loss 1 - cos, export alpha 0.7).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)

model = dict(
    type='OVCLIPSelf',
    clip=dict(model_name='ViT-B-16', pretrained='openai'),
    method=dict(type='OVMaskCLIP'),            # student last block: value path with residual + FFN (reference encode_dense)
    pos_interp='bicubic',
    region_pool='roi_align',    # reference extract_type v2
    train_blocks=None,          # all blocks; e.g. 12 of ViT-L/14's 24 to save memory
    alpha=0.7,
    text_encoder=dict(type='OVTextEncoder', templates='openai', synonyms='max'),  # region metric: best name
    losses=[dict(type='OVRegionCosineLoss', weight=1.0)],  # 1 - cos(student RoI feature, teacher crop embedding)
    data_preprocessor=dict(type='BaseDataPreprocessor'))

max_iters = 44000  # 6 epochs of COCO train2017 (118k images) at a global batch of 16
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6),
    # no weight decay on norms, biases and other 1-d parameters (the reference's ``p.ndim < 2 or 'ln' or 'bias'``)
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=0.0),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None

test_evaluator = dict(type='OVRegionClsMetric')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=2000, by_epoch=False, max_keep_ckpts=3,
                    backend_args=dict(backend='ov_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='clipself_export')]
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
