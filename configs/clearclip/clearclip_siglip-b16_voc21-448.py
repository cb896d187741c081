# ClearCLIP's VOC21 protocol on SigLIP ViT-B/16 (open_clip 'ViT-B-16-SigLIP', WebLI weights): the last-block variant
# on the trunk's last block, dense features through the MAP head's value path, and SigLIP's own text match:
# sigmoid(exp(logit_scale) * cos + logit_bias) per class (the argmax is the softmax's; see README, SigLIP).
# prob_thd is off: ClearCLIP's 0.5 is a softmax share over 21 classes, a sigmoid probability is not (re-tune it).
# SigLIP inputs are normalised with mean = std = 0.5 (x 255 = 127.5). Any other method: model.backbone.method=dict(type=...);
# SigLIP2 (same tower layout, Gemma tokenizer): model.backbone.clip.model_name=ViT-B-16-SigLIP2.
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3),
    backbone=dict(clip=dict(model_name='ViT-B-16-SigLIP', pretrained='webli'), method=dict(type='OVClearCLIP')),
    window_padding='symmetric',
    activation='sigmoid',
    logit_scale=None,  # SigLIP's own scale and bias
    slide_crop=448,
    slide_stride=224,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/voc21_clearclip.txt')),
    prob_thd=0.0)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
