# Held-out scenes of the synthetic world (tools/make_synthetic.py --split val --seed 2000), 128 px.
# Labels: 4 stuff classes, then 12 object classes; novel objects (star, hexagon, heart) are the unseen ones.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OVSyntheticSegDataset', data_root='data/synthetic/val', pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='OVZeroShotIoUMetric', per_class=True)
val_evaluator = test_evaluator
