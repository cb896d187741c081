# Training-free segmentation with a DeCLIP EVA-02-CLIP B/16 (the export of declip_eva02-b16_coco-grid-560.py, or
# DeCLIP's released EVA-CLIP-format checkpoint): its last block as DeCLIP infers (q-q attention, no residual, no
# FFN), on ClearCLIP's VOC21 protocol (448 px short side, 448/224 windows, logit scale 50, background threshold 0.5).
#   python tools/test.py configs/declip/declip_eva02-b16_voc21-448.py --cfg-options \
#       model.backbone.clip.config_file=work_dirs/declip/declip_export.json \
#       model.backbone.clip.checkpoint=work_dirs/declip/declip_export.safetensors
# Any other training-free method runs on the same weights by its method: e.g.
#   --cfg-options model.backbone.method.type=OVClearCLIP
_base_ = ['../_base_/models/ov_segmentor.py', '../_base_/datasets/voc21.py']
model = dict(
    backbone=dict(clip=dict(model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k'),
                  method=dict(type='OVDeCLIP', attention='qq')),
    window_padding='symmetric',
    logit_scale=50.0,
    slide_crop=448,
    slide_stride=224,
    text_encoder=dict(vocabulary=dict(file='{{fileDirname}}/../_base_/vocabularies/voc21_clearclip.txt')),
    prob_thd=0.5)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader
