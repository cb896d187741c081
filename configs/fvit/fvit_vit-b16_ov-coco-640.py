# OV-COCO with F-ViT on OpenAI CLIP ViT-B/16, the reference recipe (CLIPSelf's F-ViT/configs/ov_coco, whose
# B/16 configs use EVA-02: see fvit_eva02-b16_ov-coco-640.py).
#   bash tools/dist_train.sh configs/fvit/fvit_vit-b16_ov-coco-640.py 8
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_coco_detection.py',
          '../_base_/schedules/fvit_ov-coco_3e.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='ov_coco65')),  # base classes: from the dataset
             roi_head=dict(bbox_head=dict(novel_logits='masked', background_weight=0.6)))
