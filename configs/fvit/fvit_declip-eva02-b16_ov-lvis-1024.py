# OV-LVIS with F-ViT on a DeCLIP EVA-02-CLIP B/16: fvit_eva02-b16_ov-lvis-1024.py with the backbone's last block
# run as DeCLIP infers (q-q attention) for the VLM score map; the checkpoint as fvit_declip-eva02-b16_ov-coco-640.py
# (a DeCLIP run on LVIS images for the LVIS benchmark, as CLIPSelf's eva_vitb16_lvis_* weights).
_base_ = ['../_base_/models/fvit_vit-b16.py', '../_base_/datasets/ov_lvis_detection.py',
          '../_base_/schedules/fvit_ov-lvis_48e.py']
model = dict(
    backbone=dict(clip=dict(_delete_=True, model_name='EVA02-B-16', pretrained='merged2b_s8b_b131k'),
                  method=dict(_delete_=True, type='OVDeCLIP', attention='qq')),
    text_encoder=dict(vocabulary=dict(dataset='lvis')),
    roi_head=dict(
        bbox_head=dict(vlm_temperature=50.0, alpha=0.1, beta=0.6, novel_logits='masked', background_weight=0.9),
        mask_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
                                out_channels=256, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256, num_classes=1203,
                       class_agnostic=True, norm_cfg={{_base_.norm_cfg}},
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True), mask_size=28)),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                            mask_thr_binary=0.5)))
