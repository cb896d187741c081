# OV-COCO with F-ViT on EVA-02-CLIP L/14 (336 px tower), the reference (F-ViT/configs/ov_coco/
# fvit_vitl14_upsample_fpn_bs64_3e_ovcoco_eva_*.py): blocks 6/10/14/23 of 24, pyramid strides 3.5-28 (anchors
# 3.5-56), 768-d box-head fcs and VLM features, the B/16 temperatures and fusion. Checkpoints as the B/16 config
# (EVA02_CLIP_L_336_psz14_s6B.pt, eva_vitl14_coco_clipself_patches.pt / _proposals.pt).
# Published novel AP50: 38.4 (patches) / 44.3 (proposals).
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_coco_detection.py',
          '../_base_/schedules/fvit_ov-coco_3e.py']
strides = [3.5, 7, 14, 28]
model = dict(
    backbone=dict(clip=dict(_delete_=True, model_name='EVA02-L-14-336', pretrained='merged2b_s6b_b61k'),
                  out_indices=(6, 10, 14, 23)),
    text_encoder=dict(vocabulary=dict(dataset='ov_coco65')),  # base classes: from the dataset
    neck=dict(in_channels=[1024] * 4),
    rpn_head=dict(anchor_generator=dict(strides=[*strides, 56])),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=strides),
                  vlm_roi_extractor=dict(out_channels=768, featmap_strides=[14]),
                  bbox_head=dict(fc_out_channels=768, embed_dim=768, novel_logits='masked', background_weight=0.6)))
