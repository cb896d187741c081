# COCO images for CLIPSelf (train: grid regions) and region classification (val: every annotated region).
data_root = 'data/coco/'
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='OVCLIPSelfDataset', ann_file=data_root + 'annotations/instances_train2017.json',
                 img_dir=data_root + 'train2017', mode='grid', input_size=1024, crop_size=224, patch_size=16,
                 max_split=6, max_boxes=6))

# region classification (tools/test.py): every annotated region, three ways
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='OVCLIPSelfDataset', ann_file=data_root + 'annotations/instances_val2017.json',
                 img_dir=data_root + 'val2017', mode='annotations', input_size=1024, crop_size=224,
                 patch_size=16))
