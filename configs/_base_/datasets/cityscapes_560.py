# Cityscapes at a 560 px short side (SCLIP / NACLIP / SC-CLIP / ResCLIP protocols)
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 560), keep_ratio=True),
    # annotations are loaded after Resize: predictions are resized back to the original size
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CityscapesDataset', data_root='data/cityscapes', data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'), pipeline=test_pipeline))
val_dataloader = test_dataloader
