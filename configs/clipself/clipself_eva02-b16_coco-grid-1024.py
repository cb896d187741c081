# CLIPSelf on EVA-02-CLIP B/16, the reference recipe (wusize/CLIPSelf scripts/train_clipself_coco_image_patches_eva_vitb16.sh):
# student input 1024, teacher crops 224, RoIAlign 1x1 (extract type v2), AdamW lr 1e-5 / wd 0.1, 1000 warm-up
# iterations, 6 epochs at 8 GPUs x 2 images, 12 of the 12 blocks unlocked (EVA-CLIP's lock: the stem, final norm and
# head stay frozen), export alpha 0.7.
# The reference starts from EVA-CLIP's EVA02_CLIP_B_psz16_s8B.pt: pass it as the checkpoint (the EVA-CLIP key names
# load onto open_clip's timm EVA-02 tower by a strict key map), e.g.
#   python tools/train.py configs/clipself/clipself_eva02-b16_coco-grid-1024.py \
#       --cfg-options model.clip.checkpoint=checkpoints/EVA02_CLIP_B_psz16_s8B.pt
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(clip=dict(model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k'), train_blocks=12, train_head=False,
             alpha=0.7,
             text_encoder=dict(vocabulary=dict(dataset='coco80')))
