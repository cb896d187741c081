# CLIPSelf, grid patches (reference: ViT-B/16, student input 1024, teacher crops 224).
# python tools/train.py configs/clipself/clipself_vit-b16_coco-grid-1024.py   (GPUs: tools/dist_train.sh)
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='coco80')))
