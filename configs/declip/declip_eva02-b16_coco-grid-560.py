# DeCLIP on EVA-02-CLIP B/16, the reference recipe (xiaomoguhz/DeCLIP scripts/dist_DeCLIP_eva_vitb16_coco.sh):
# CLIPSelf's grid distillation (student 560 px -> 35 x 35 tokens, teacher crops 224, at most 20 boxes, content loss
# 1 - cos, weight 1.0) plus the context loss (weight 0.1): the last block's q-q similarity pulled towards DINOv2-B
# with registers seeing the same image at 35 x 14 = 490 px. Last block decoupled (qq attention, no scale, no RoPE,
# no residual, no FFN); the dense map is RoI-pooled before normalisation. AdamW lr 1e-5, wd 0.1, betas (0.9, 0.999),
# eps 1e-8, 1000 warm-up iterations, cosine, 6 epochs at 4 GPUs x 4 images, all 12 blocks unlocked (EVA-CLIP's lock:
# stem, final norm and head frozen), export 0.7 * student + 0.3 * teacher.
# Published (F-ViT on OV-COCO, novel AP50): 41.1 (CLIPSelf 37.6). Weights: EVA-CLIP's EVA02_CLIP_B_psz16_s8B.pt and
# DINOv2's dinov2_vitb14_reg4_pretrain.pth (or timm's vit_base_patch14_reg4_dinov2.lvd142m file):
#   tools/dist_train.sh configs/declip/declip_eva02-b16_coco-grid-560.py 4 --cfg-options \
#       model.clip.checkpoint=checkpoints/EVA02_CLIP_B_psz16_s8B.pt \
#       model.losses.1.vfm.checkpoint=checkpoints/dinov2_vitb14_reg4_pretrain.pth
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(
    clip=dict(model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k'),
    method=dict(_delete_=True, type='OVDeCLIP', attention='qq'),  # the reference's qq_vfm_distill
    train_blocks=12, train_head=False, normalize_dense=False, alpha=0.7,
    text_encoder=dict(vocabulary=dict(dataset='coco80')),
    losses=[dict(type='OVRegionCosineLoss', weight=1.0),  # "content"
            dict(type='OVContextLoss', weight=0.1, vfm=dict(model_name='vit_base_patch14_reg4_dinov2.lvd142m'))])
train_dataloader = dict(batch_size=4, dataset=dict(input_size=560, max_boxes=20))
test_dataloader = dict(dataset=dict(input_size=560))
optim_wrapper = dict(optimizer=dict(betas=(0.9, 0.999), eps=1e-8), clip_grad=None)
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='declip_export')]
