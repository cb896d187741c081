# Zero-shot COCO-Stuff (171 classes: 156 seen / 15 unseen, the ZegFormer / ZSSeg split): train on the
# seen classes of train2017 (unseen pixels ignored), test on val2017 with all 171 classes; the metric
# reports mIoU_seen, mIoU_unseen and hIoU. 4 GPUs x 4 images, 80k iterations.
#   bash tools/dist_train.sh configs/textseg/textseg_vit-b16_coco_stuff164k-zs156-512.py 4
_base_ = ['../_base_/models/textseg_vit-b16.py', 'mmseg::_base_/datasets/coco-stuff164k.py']
unseen = ['frisbee', 'skateboard', 'cardboard', 'carrot', 'scissors', 'suitcase', 'giraffe', 'cow', 'road',
          'wall-concrete', 'tree', 'grass', 'river', 'clouds', 'playingfield']
model = dict(text_encoder=dict(vocabulary=dict(dataset='coco_stuff171')), unseen=unseen)
split = dict(novel_classes=unseen)  # dataset metadata: read by OVZeroShotIoUMetric
train_dataloader = dict(batch_size=4, dataset=dict(metainfo=split))
val_dataloader = dict(dataset=dict(metainfo=split))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='OVZeroShotIoUMetric')
test_evaluator = val_evaluator
