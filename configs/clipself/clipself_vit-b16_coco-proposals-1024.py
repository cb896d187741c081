# CLIPSelf, region proposals (reference: boxes of a proposal file in COCO format, area filter
# min_size 8 .. max_size 1024 px, teacher crops enlarged 1.5x about the box centre, at most 20 boxes).
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='coco80')))
train_dataloader = dict(dataset=dict(
    mode='proposals', ann_file='data/coco/proposals/train2017_proposals.json', max_boxes=20,
    min_size=8, max_size=1024))
