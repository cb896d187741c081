# The synthetic world for CLIPSelf (train: grid regions of unlabeled scenes) and region classification
# (val: held-out scenes, every object). Tiny CLIP native size 128, student input 256 (16 x 16 patches).
# Box crops are square windows (box_crop_shape='square'): the tiny CLIP never saw the black bands of the
# reference's padded crops (1.5x box crops: 35% padded vs 77% square, whole scenes 85.5%).
#   python tools/make_synthetic.py --out data/synthetic --split train --num-images 2000 --seed 3000
#   python tools/make_synthetic.py --out data/synthetic --split val --num-images 200 --seed 2000
data_root = 'data/synthetic/'
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='OVCLIPSelfDataset', ann_file=data_root + 'train/instances.json',
                 img_dir=data_root + 'train/images', mode='grid', input_size=256, crop_size=128, patch_size=16,
                 max_split=4, max_boxes=6, repeats=20, box_crop_shape='square'))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='OVCLIPSelfDataset', ann_file=data_root + 'val/instances.json',
                 img_dir=data_root + 'val/images', mode='annotations', input_size=256, crop_size=128,
                 patch_size=16, box_crop_shape='square'))
