# Training-free open-vocabulary segmentation with a frozen OpenAI CLIP ViT-B/16 (open_clip).
# Methods set `model.backbone.method=dict(type=...)` (ovdense.models.methods) and the protocol knobs.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
# names each prediction's labels by the vocabulary it was made in (stock SegLocalVisualizer: Cityscapes')
visualizer = dict(type='OVSegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')

# OpenAI CLIP statistics x 255 (rounded), as SCLIP / NACLIP / ClearCLIP normalise
clip_preprocessor = dict(
    type='OVSegDataPreProcessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
model = dict(
    type='OVSegmentor',
    data_preprocessor=clip_preprocessor,
    backbone=dict(type='OVCLIPViT', clip=dict(model_name='ViT-B-16', pretrained='openai'), method=dict(type='OVVanilla')),
    # SCLIP / ClearCLIP / NACLIP / ProxyCLIP: a class's probability is the max over its names' (softmax over all names)
    text_encoder=dict(type='OVTextEncoder', templates='openai', synonyms='max'),
    logit_scale=40.0,
    prob_thd=0.0,
    slide_crop=224,
    slide_stride=112)
custom_hooks = [dict(type='OVInitWeightsHook')]
test_cfg = dict(type='TestLoop')
val_cfg = dict(type='ValLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    visualization=dict(type='SegVisualizationHook'))
