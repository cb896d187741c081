# CAT-Seg ViT-B/16 (trained on COCO-Stuff: catseg_vit-b16_coco-stuff171-384.py) evaluated zero-shot on PC-459
# (published mIoU 19.0), the reference's eval.sh protocol: shortest edge 640, sliding windows with a global view.
# Labels are 16-bit (OVLoadWideAnnotations); the PC vocabulary's names before the first ", " are prompted.
#   python tools/test.py configs/catseg/catseg_vit-b16_pc459-640.py work_dirs/catseg_vit-b16_coco-stuff171-384/iter_80000.pth
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/pc459.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='pc459')))
test_pipeline = {{_base_.catseg_wide_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
