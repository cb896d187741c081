# CAT-Seg ViT-B/16 (trained on COCO-Stuff: catseg_vit-b16_coco-stuff171-384.py) evaluated zero-shot on ADE-150
# (published mIoU 31.8), the reference's eval.sh protocol: shortest edge 640, sliding windows with a global view.
#   python tools/test.py configs/catseg/catseg_vit-b16_ade150-640.py work_dirs/catseg_vit-b16_coco-stuff171-384/iter_80000.pth
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/ade20k.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='ade20k')))
test_pipeline = {{_base_.catseg_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
