# CAT-Seg ViT-B/16 (trained on COCO-Stuff: catseg_vit-b16_coco-stuff171-384.py) evaluated zero-shot on ADE-847
# (published mIoU 12.0), the reference's eval.sh protocol: shortest edge 640, sliding windows with a global view.
# Labels are 16-bit (OVLoadWideAnnotations); the ADE vocabulary's names before the first ", " are prompted.
#   python tools/test.py configs/catseg/catseg_vit-b16_ade847-640.py work_dirs/catseg_vit-b16_coco-stuff171-384/iter_80000.pth
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/ade847.py']
model = dict(text_encoder=dict(vocabulary=dict(dataset='ade847')))
test_pipeline = {{_base_.catseg_wide_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
