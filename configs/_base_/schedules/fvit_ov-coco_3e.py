# F-ViT's OV-COCO schedule: AdamW 1e-4 (wd 0.1, grad clip 1.0), 250 warm-up iterations, 3 epochs at batch 64
# (8 GPUs x 8; the learning rate scales with the batch as the reference's auto_scale_lr).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=250)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=True, base_batch_size=64)
