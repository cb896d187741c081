# Trained open-vocabulary segmentation: frozen OpenAI CLIP ViT-B/16 (maskclip dense map + blocks 6 and
# 9), a conv head whose per-pixel classifier is the text embedding of the vocabulary (OVTextSegHead).
# Datasets give `unseen` classes (their novel_classes metadata): left out of training, scored at test.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.models'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
# names each prediction's labels by the vocabulary it was made in (stock SegLocalVisualizer: Cityscapes')
visualizer = dict(type='OVSegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer')

model = dict(
    type='OVTextSegmentor',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.771, 116.746, 104.094],
                           std=[68.501, 66.632, 70.323], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                           size=(512, 512)),
    backbone=dict(type='OVCLIPViT', clip=dict(model_name='ViT-B-16', pretrained='openai'), method=dict(type='OVMaskCLIP'),
                  out_indices=(5, 8), frozen=True),
    decode_head=dict(type='OVTextSegHead', in_channels=[768, 768, 512], channels=256, embed_dim=512, num_convs=2,
                     dropout_ratio=0.1, norm_cfg=dict(type='SyncBN', requires_grad=True), align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    text_encoder=dict(type='OVTextEncoder', templates='openai', synonyms='mean'),  # one embedding per class
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4), clip_grad=None)
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=0.9, eta_min=1e-6, by_epoch=False, begin=1500, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000, max_keep_ckpts=2,
                    backend_args=dict(backend='ov_atomic_local')),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='OVInitWeightsHook')]
log_processor = dict(by_epoch=False)
