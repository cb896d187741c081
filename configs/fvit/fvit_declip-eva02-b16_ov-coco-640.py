# OV-COCO with F-ViT on a DeCLIP EVA-02-CLIP B/16 (configs/declip/declip_eva02-b16_coco-grid-560.py's export, or
# DeCLIP's released checkpoint): fvit_eva02-b16_ov-coco-640.py with the backbone's last block run as DeCLIP infers
# (q-q attention, no residual, no FFN) for the VLM score map. DeCLIP has not released its F-ViT code (its README's
# to-do list); the fusion, temperatures and schedule are F-ViT's EVA B/16 ones.
#   tools/dist_train.sh configs/fvit/fvit_declip-eva02-b16_ov-coco-640.py 8 --cfg-options \
#       model.backbone.clip.config_file=work_dirs/declip/declip_export.json \
#       model.backbone.clip.checkpoint=work_dirs/declip/declip_export.safetensors
#   (DeCLIP's EVA-CLIP-format file: model.backbone.pretrained=checkpoints/DeCLIP_EVA-B.pt)
# Published novel AP50: 41.1 (CLIPSelf 37.6).
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_coco_detection.py',
          '../_base_/schedules/fvit_ov-coco_3e.py']
model = dict(backbone=dict(clip=dict(_delete_=True, model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k'),
                           method=dict(_delete_=True, type='OVDeCLIP', attention='qq')),
             text_encoder=dict(vocabulary=dict(dataset='ov_coco65')),
             roi_head=dict(bbox_head=dict(novel_logits='masked', background_weight=0.6)))
