# CAT-Seg (KU-CVLAB/CAT-Seg, CVPR 2024, configs/vitb_384.yaml) on OpenAI's CLIP ViT-B/16: every CLIP input resized to
# 384 (24 x 24 patches), the last block's value path (OVMaskCLIP) for the cost volume, blocks 4 and 8 (1-based) as
# decoder guidance, the CLIP's attention q and v weights fine-tuned in both towers (lr x 0.01), the aggregator's
# reference sizes (hidden 128, 2 layers, 4 heads, Swin windows 12, class padding 256), one template,
# first synonym only, sigmoid probabilities, the reference's sliding evaluation (640 canvas, 384 windows, overlap
# 0.333, plus a global view).
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
# names each prediction's labels by the vocabulary it was made in (stock SegLocalVisualizer: Cityscapes')
visualizer = dict(type='OVSegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')
model = dict(
    type='OVCATSeg',
    # CAT-Seg's CLIP_PIXEL_MEAN / STD on 0-255 RGB
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.7709383, 116.7460125, 104.09373615],
                           std=[68.5005327, 66.6321579, 70.3231630], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                           size=(384, 384)),
    backbone=dict(type='OVCLIPViT', clip=dict(model_name='ViT-B-16', pretrained='openai'),
                  method=dict(type='OVMaskCLIP'), out_indices=(3, 7), pos_interp='bicubic', frozen=False),
    decode_head=dict(type='OVCATSegHead', width=768, embed_dim=512, text_guidance_proj_dim=128,
                     appearance_guidance_proj_dim=128, decoder_dims=(64, 32), decoder_guidance_dims=(256, 128),
                     decoder_guidance_proj_dims=(32, 16), num_layers=2, num_heads=4, hidden_dim=128,
                     pooling_size=(2, 2), feature_resolution=(24, 24), window_size=12, pad_len=256),
    text_encoder=dict(type='OVTextEncoder', vocabulary=dict(dataset='coco_stuff171'),
                      templates=['A photo of a {} in the scene'], synonyms='first', trainable=True),
    clip_resolution=384,
    finetune='qv',
    test_cfg=dict(mode='slide'))
# AdamW 2e-4 (CLIP x 0.01), wd 1e-4 (0 on norms; 0 on the packed q/k/v weight, whose k rows are frozen by a gradient
# mask and must not decay), full-model gradient clipping at norm 0.01, cosine over 80k iterations, 4 images per batch
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8),
    # (mmengine applies the longest matching key only: the packed projection's key repeats the CLIP's multiplier)
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'backbone.clip': dict(lr_mult=0.01),
                                                         'in_proj_weight': dict(lr_mult=0.01, decay_mult=0.0)}),
    clip_grad=dict(max_norm=0.01, norm_type=2))
max_iters = 80000
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min=0.0)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=2,
                    backend_args=dict(backend='ov_atomic_local')),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='OVInitWeightsHook')]
log_processor = dict(by_epoch=False)
# the reference's train mapper: shortest edge 384 (max 1333), 384 x 384 crop, colour jitter, flip
catseg_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomChoiceResize', scales=[384], resize_type='ResizeShortestEdge', max_size=1333),
    dict(type='RandomCrop', crop_size=(384, 384), cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# evaluation input: shortest edge 640 (max 2560)
catseg_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# ADE-847 / PC-459: 16-bit label maps (mmseg's LoadAnnotations casts to uint8)
catseg_wide_test_pipeline = [*catseg_test_pipeline[:2], dict(type='OVLoadWideAnnotations'), catseg_test_pipeline[-1]]
