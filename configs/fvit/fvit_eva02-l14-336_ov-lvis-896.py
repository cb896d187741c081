# OV-LVIS with F-ViT on EVA-02-CLIP L/14 (336 px tower), the reference (F-ViT/configs/ov_lvis/
# fvit_vitl14_upsample_fpn_bs64_4x_ovlvis_eva_*.py): 896 px, blocks 6/10/14/23, pyramid strides 3.5-28, 768-d
# box-head fcs and VLM features, alpha 0.1 / beta 0.4 (the reference notes that 0.6-0.8 raise APr).
# Checkpoints: EVA02_CLIP_L_336_psz14_s6B.pt (original) or eva_vitl14_lvis_clipself_patches.pt (CLIPSelf; APr 34.9).
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_lvis_detection.py',
          '../_base_/schedules/fvit_ov-lvis_48e.py']
strides = [3.5, 7, 14, 28]
model = dict(
    backbone=dict(clip=dict(_delete_=True, model_name='EVA02-L-14-336', pretrained='merged2b_s6b_b61k'),
                  out_indices=(6, 10, 14, 23)),
    text_encoder=dict(vocabulary=dict(dataset='lvis')),  # base classes (common + frequent): from the dataset
    neck=dict(in_channels=[1024] * 4),
    rpn_head=dict(anchor_generator=dict(strides=[*strides, 56])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=strides),
        vlm_roi_extractor=dict(out_channels=768, featmap_strides=[14]),
        bbox_head=dict(fc_out_channels=768, embed_dim=768, vlm_temperature=50.0, alpha=0.1, beta=0.4,
                       novel_logits='masked', background_weight=0.9),
        mask_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
                                out_channels=256, featmap_strides=strides),
        mask_head=dict(type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256, num_classes=1203,
                       class_agnostic=True, norm_cfg={{_base_.norm_cfg}},
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True), mask_size=28)),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                            mask_thr_binary=0.5)))
image_size = (896, 896)  # the dataset base's pipelines at this size
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # 'text': the classes of DetInferencer(texts=...), as mmdet's grounding configs pack it
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
