# DenseCLIP with an OpenAI CLIP ViT-B/16 (open_clip), the reference recipe
# (raoyongming/DenseCLIP segmentation/configs/denseclip_fpn_vit-b_640x640_80k.py): blocks 3/5/7/11 as a
# 4-level pyramid, score maps of 8-context-token prompts concatenated to level 2, FPN neck + FPNHead,
# auxiliary score-map cross-entropy (weight 0.4, tau 0.07); AdamW 1e-4, backbone lr x0.1, text encoder frozen.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
# names each prediction's labels by the vocabulary it was made in (stock SegLocalVisualizer: Cityscapes')
visualizer = dict(type='OVSegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615], std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(640, 640))
model = dict(
    type='OVDenseCLIP',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='OVDenseCLIPViT', clip=dict(model_name='ViT-B-16', pretrained='openai'),
                  out_indices=(3, 5, 7, 11), norm_cfg=norm_cfg),
    context_decoder=dict(transformer_width=256, transformer_heads=4, transformer_layers=3, dropout=0.1),
    score_concat_index=2,
    tau=0.07,
    score_loss_weight=0.4,
    neck=dict(type='FPN', in_channels=[768, 768, 768 + 150, 768], out_channels=256, num_outs=4),
    decode_head=dict(
        type='FPNHead', in_channels=[256, 256, 256, 256], in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
        channels=256, dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    # prompts: 8 learnt context tokens + the class name in 5 tokens (the reference has no synonyms)
    text_encoder=dict(type='OVTextEncoder', vocabulary=dict(dataset='ade20k'), num_contexts=8, context_length=5,
                      synonyms='max'),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(426, 426)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1), 'norm': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=0.9, eta_min=1e-6, by_epoch=False, begin=1500, end=80000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000,
                    backend_args=dict(backend='ov_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
