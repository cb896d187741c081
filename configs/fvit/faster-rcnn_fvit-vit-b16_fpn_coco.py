# Plug-in proof: mmdet's stock Faster R-CNN R50-FPN config made open-vocabulary by swapping the backbone
# (frozen CLIP ViT-B/16 pyramid, widths projected to ResNet's so the stock FPN is unchanged), the box head
# (text-embedding classifier) and the detector/RoI-head types that hand it the class embeddings of the
# COCO vocabulary, embedded with the backbone's own CLIP. No VLM score fusion here (no dense map: see
# configs/fvit/fvit_vit-b16_ov-coco-640.py).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['ovdense.detection'], allow_failed_imports=False)
runner_type = 'OVRunner'  # mmengine's Runner: checkpoints read weights-only, freed memory kept for reuse (ovdense.runner)
model = dict(
    type='OVFViT',
    text_encoder=dict(vocabulary=dict(dataset='coco80'), synonyms='mean'),
    backbone=dict(_delete_=True, type='OVFViTBackbone', clip=dict(model_name='ViT-B-16', pretrained='openai'),
                  out_indices=(3, 5, 7, 11), out_channels=(256, 512, 1024, 2048)),
    roi_head=dict(type='OVFViTRoIHead', bbox_head=dict(
        _delete_=True, type='OVTextBBoxHead', in_channels=256, fc_out_channels=1024, roi_feat_size=7,
        num_shared_fcs=2, embed_dim=512,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))))
