# Zero-shot PASCAL VOC 2012 (20 classes, background ignored: 15 seen / 5 unseen, the SPNet / ZegCLIP
# split): train on the seen classes of train + SBD aug (unseen pixels ignored), test on val with all 20
# classes; the metric reports mIoU_seen, mIoU_unseen and hIoU. 4 GPUs x 4 images, 20k iterations.
#   bash tools/dist_train.sh configs/textseg/textseg_vit-b16_voc20-zs15-512.py 4
_base_ = ['../_base_/models/textseg_vit-b16.py', 'mmseg::_base_/datasets/pascal_voc12_aug.py']
unseen = ['pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor']
model = dict(text_encoder=dict(vocabulary=dict(dataset='voc20')), unseen=unseen)
split = dict(novel_classes=unseen)  # dataset metadata: read by OVZeroShotIoUMetric
voc = dict(type='OVPascalVOC20Dataset', data_root='data/VOCdevkit/VOC2012', metainfo=split)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(datasets=[
    dict(**voc, data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
         ann_file='ImageSets/Segmentation/train.txt', pipeline=train_pipeline),
    dict(**voc, data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
         ann_file='ImageSets/Segmentation/aug.txt', pipeline=train_pipeline)]))
val_dataloader = dict(dataset=dict(type='OVPascalVOC20Dataset', metainfo=split))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='OVZeroShotIoUMetric')
test_evaluator = val_evaluator
max_iters = 20000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=0.9, eta_min=1e-6, by_epoch=False, begin=1500, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
