# CAT-Seg ViT-L/14@336 trained on COCO-Stuff 171, the reference recipe (configs/vitl_336.yaml): CLIP input 336
# (24 x 24 patches), blocks 8 and 16 (1-based) as decoder guidance, text / appearance guidance from the 768-d joint
# space, the B/16 aggregator and schedule. Published mIoU (ADE-847 / PC-459 / ADE-150 / PC-59 / VOC-20):
# 16.0 / 23.8 / 37.9 / 63.3 / 97.0. Zero-shot tests: a B/16 test config with the same model overrides, e.g.
#   python tools/test.py configs/catseg/catseg_vit-b16_ade150-640.py work_dirs/.../iter_80000.pth \
#       --cfg-options model.backbone.clip.model_name=ViT-L-14-336 "model.backbone.out_indices=(7,15)" \
#       model.decode_head.width=1024 model.decode_head.embed_dim=768 model.clip_resolution=336
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/coco_stuff164k.py']
model = dict(backbone=dict(clip=dict(model_name='ViT-L-14-336', pretrained='openai'), out_indices=(7, 15)),
             decode_head=dict(width=1024, embed_dim=768), clip_resolution=336)
train_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='COCOStuffDataset', data_root='data/coco_stuff164k',
                 data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
                 pipeline={{_base_.catseg_train_pipeline}}))
test_pipeline = {{_base_.catseg_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
