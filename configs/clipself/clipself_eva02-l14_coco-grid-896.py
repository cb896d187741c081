# CLIPSelf on EVA-02-CLIP L/14 at 336, the reference recipe (scripts/train_clipself_coco_image_patches_eva_vitl14.sh):
# student input 896, teacher crops 336, 24 of the 24 blocks unlocked, export alpha 0.95 (lr, schedule as B/16).
# Reference weights: EVA02_CLIP_L_336_psz14_s6B.pt (EVA-CLIP format): --cfg-options model.clip.checkpoint=PATH.
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(clip=dict(model_name='EVA02-L-14-336', pretrained='merged2b_s6b_b61k'), train_blocks=24, train_head=False,
             alpha=0.95,
             text_encoder=dict(vocabulary=dict(dataset='coco80')))
train_dataloader = dict(dataset=dict(input_size=896, crop_size=336, patch_size=14))
test_dataloader = dict(dataset=dict(input_size=896, crop_size=336, patch_size=14))
