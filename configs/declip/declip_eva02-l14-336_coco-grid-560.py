# DeCLIP on EVA-02-CLIP L/14 at 336, the reference recipe (scripts/dist_DeCLIP_eva_vitL14_336_coco.sh): student
# 560 px / patch 14 -> 40 x 40 tokens, teacher crops 336, DINOv2-L with registers at 40 x 14 = 560 px, 24 of 24 blocks
# unlocked, 4 GPUs x 2 images at lr 1e-5 (a global batch of 8, although the script's comment asks for 16),
# export alpha 0.95. Published: OV-COCO novel AP50 46.2, OV-LVIS APr 40.3 (F-ViT).
# Weights: EVA02_CLIP_L_336_psz14_s6B.pt, dinov2_vitl14_reg4_pretrain.pth.
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(
    clip=dict(model_name='EVA02-L-14-336', pretrained='merged2b_s6b_b61k'),
    method=dict(_delete_=True, type='OVDeCLIP', attention='qq'),  # the reference's qq_vfm_distill
    train_blocks=24, train_head=False, normalize_dense=False, alpha=0.95,
    text_encoder=dict(vocabulary=dict(dataset='coco80')),
    losses=[dict(type='OVRegionCosineLoss', weight=1.0),  # "content"
            dict(type='OVContextLoss', weight=0.1, vfm=dict(model_name='vit_large_patch14_reg4_dinov2.lvd142m'))])
train_dataloader = dict(batch_size=2, dataset=dict(input_size=560, crop_size=336, patch_size=14, max_boxes=20))
test_dataloader = dict(dataset=dict(input_size=560, crop_size=336, patch_size=14))
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.999), eps=1e-8), clip_grad=None)
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='declip_export')]
