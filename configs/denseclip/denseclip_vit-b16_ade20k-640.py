# DenseCLIP ViT-B/16 on ADE20K (supervised, 150 classes), 640x640 crops, 80k iterations, batch 4 per GPU
# x 8 GPUs (reference). python tools/train.py configs/denseclip/denseclip_vit-b16_ade20k-640.py  (GPUs: dist_train.sh)
_base_ = ['../_base_/models/denseclip_vit-b16.py', 'mmseg::_base_/datasets/ade20k_640x640.py']
train_dataloader = dict(batch_size=4)
test_pipeline = [  # reference ade20k_clip_640: resize to short side 640 (long side at most 2048)
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
