# F-ViT's OV-LVIS schedule: AdamW 1e-4 (wd 0.1, grad clip 1.0), 250 warm-up iterations, 48 epochs at batch 64
# (8 GPUs x 8), steps at 32 and 44; validation every 12 epochs.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=48, by_epoch=True, milestones=[32, 44], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=48, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=True, base_batch_size=64)
