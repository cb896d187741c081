# OV-COCO with F-ViT on EVA-02-CLIP B/16, the reference (F-ViT/configs/ov_coco/
# fvit_vitb16_upsample_fpn_bs64_3e_ovcoco_eva_*.py): blocks 3/5/7/11, 512-d box-head fcs, learnt temperature 50,
# VLM temperature 75, alpha 0.1 / beta 0.8. The reference's variants differ by the checkpoint only:
#   original:  --cfg-options model.backbone.pretrained=checkpoints/EVA02_CLIP_B_psz16_s8B.pt
#   CLIPSelf:  --cfg-options model.backbone.pretrained=checkpoints/eva_vitb16_coco_clipself_patches.pt
#              (or _proposals.pt; EVA-CLIP / CLIPSelf key names load by a strict key map)
# Published novel AP50: 33.6 (patches) / 37.6 (proposals).
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_coco_detection.py',
          '../_base_/schedules/fvit_ov-coco_3e.py']
model = dict(backbone=dict(clip=dict(_delete_=True, model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k')),
             text_encoder=dict(vocabulary=dict(dataset='ov_coco65')),  # base classes: from the dataset
             roi_head=dict(bbox_head=dict(novel_logits='masked', background_weight=0.6)))
