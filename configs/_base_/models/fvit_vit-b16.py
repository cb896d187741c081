# F-ViT (CLIPSelf's open-vocabulary detector) on mmdet 3.x: frozen CLIP ViT-B/16 (blocks 3/5/7/11 ->
# 4-level pyramid), FPN, RPN, a 4-conv 2-fc box head (512-d, as the reference's B/16) whose classifier is the
# vocabulary's text embedding (learnt temperature 50, learnt background), class-agnostic regression, and VLM
# score fusion with the ViT's dense CLIP map (alpha=0.1 base, beta=0.8 novel, temperature 75) as the reference
# OV-COCO config.
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['ovdense.detection'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
norm_cfg = dict(type='SyncBN', requires_grad=True)
clip = dict(model_name='ViT-B-16', pretrained='openai')
model = dict(
    type='OVFViT',
    # the classifier: the vocabulary's embeddings (one per class) and a learnt background
    text_encoder=dict(type='OVTextEncoder', vocabulary=dict(dataset='coco80'), templates='openai', synonyms='mean',
                      background='learnt'),
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[122.771, 116.746, 104.094], std=[68.501, 66.632, 70.323],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='OVFViTBackbone', clip=clip, out_indices=(3, 5, 7, 11), method=dict(type='OVMaskCLIP'), norm_cfg=norm_cfg,
                  with_dense=True),
    neck=dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5, norm_cfg=norm_cfg),
    rpn_head=dict(
        type='RPNHead', in_channels=256, feat_channels=256, num_convs=2,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    roi_head=dict(
        type='OVFViTRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=256, featmap_strides=[4, 8, 16, 32]),
        vlm_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=1, sampling_ratio=0),
                               out_channels=512, featmap_strides=[16]),
        bbox_head=dict(
            type='OVTextBBoxHead', in_channels=256, fc_out_channels=512, roi_feat_size=7, embed_dim=512,
            num_shared_convs=4, num_shared_fcs=2, norm_cfg=norm_cfg, temperature=50.0, vlm_temperature=75.0, alpha=0.1, beta=0.8,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=True,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                               match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
                 allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                                match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
                  pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.4), max_per_img=100)))
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVBaseClassesFromDatasetHook')]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                     backend_args=dict(backend='ov_atomic_local')))  # atomic writes
