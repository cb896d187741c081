# CAT-Seg ViT-B/16 (trained on COCO-Stuff: catseg_vit-b16_coco-stuff171-384.py) evaluated zero-shot on PAS-20b: VOC
# with its background as a class, the reference's protocol (datasets/voc20b.json, VOCbEvaluator): the 20 classes and
# 39 PASCAL Context names aggregated together, a pixel whose best name is one of the 39 is background. Here background
# is label 0 (mmseg's VOC 2012 layout), the max over those names; the argmax and the per-class IoU are the reference's.
#   python tools/test.py configs/catseg/catseg_vit-b16_voc20b-640.py work_dirs/catseg_vit-b16_coco-stuff171-384/iter_80000.pth
_base_ = ['../_base_/models/catseg_vit-b16.py', '../_base_/datasets/voc21.py']
model = dict(text_encoder=dict(
    vocabulary=dict(dataset='voc20'),
    background=['bag', 'bed', 'bench', 'book', 'building', 'cabinet', 'ceiling', 'cloth', 'computer', 'cup', 'door',
                'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'keyboard', 'light', 'mountain', 'mouse',
                'curtain', 'platform', 'sign', 'plate', 'road', 'rock', 'shelves', 'sidewalk', 'sky', 'snow',
                'bedclothes', 'track', 'tree', 'truck', 'wall', 'water', 'window', 'wood']))
test_pipeline = {{_base_.catseg_test_pipeline}}
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
