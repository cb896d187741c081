# CAT-Seg ViT-B/16 trained on COCO-Stuff (171 classes, train2017), the reference recipe (configs/vitb_384.yaml:
# 80k iterations at 4 images, AdamW 2e-4, CLIP x 0.01). Evaluated zero-shot on other datasets by the
# catseg_vit-b16_{ade150,context59,voc20}-640.py configs (the same weights, their vocabularies).
# Published mIoU (ADE-847 / PC-459 / ADE-150 / PC-59 / VOC-20): 12.0 / 19.0 / 31.8 / 57.5 / 94.6.
#   bash tools/dist_train.sh configs/catseg/catseg_vit-b16_coco-stuff171-384.py 4
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/coco_stuff164k.py']
train_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='COCOStuffDataset', data_root='data/coco_stuff164k',
                 data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
                 pipeline={{_base_.catseg_train_pipeline}}))
test_pipeline = {{_base_.catseg_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
