# CAT-Seg on a DeCLIP EVA-02-CLIP B/16 (configs/declip/declip_eva02-b16_coco-grid-560.py's export or DeCLIP's
# checkpoint), the B/16 recipe otherwise (CAT-Seg's own dense path on the DeCLIP weights; DeCLIP has not released its
# CAT-Seg code); the EVA-02 tower's q / v projections are separate weights and train at
# lr x 0.01 as OpenAI's. Published on DeCLIP B/16 (ADE-847 / PC-459 / ADE-150 / PC-59): 15.3 / 21.4 / 36.3 / 60.6.
#   bash tools/dist_train.sh configs/catseg/catseg_declip-eva02-b16_coco-stuff171-384.py 4 --cfg-options \
#       model.backbone.clip.config_file=work_dirs/declip/declip_export.json \
#       model.backbone.clip.checkpoint=work_dirs/declip/declip_export.safetensors
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/coco_stuff164k.py']
model = dict(backbone=dict(clip=dict(model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k')))
train_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='COCOStuffDataset', data_root='data/coco_stuff164k',
                 data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
                 pipeline={{_base_.catseg_train_pipeline}}))
test_pipeline = {{_base_.catseg_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
