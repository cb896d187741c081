# DeCLIP on OpenAI's CLIP ViT-B/16 (open_clip 'ViT-B-16', 'openai'): the B/16 recipe on the OpenAI tower (the
# reference ships its freeze list: the last block's ln_2 and MLP; it publishes no script or figure for it). The whole
# tower trains, as CLIPSelf's OpenAI recipe; the text tower stays frozen.
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(
    clip=dict(model_name='ViT-B-16', pretrained='openai'),
    method=dict(_delete_=True, type='OVDeCLIP', attention='qq'),  # the reference's qq_vfm_distill
    train_blocks=None, normalize_dense=False, alpha=0.7,
    text_encoder=dict(vocabulary=dict(dataset='coco80')),
    losses=[dict(type='OVRegionCosineLoss', weight=1.0),  # "content"
            dict(type='OVContextLoss', weight=0.1, vfm=dict(model_name='vit_base_patch14_reg4_dinov2.lvd142m'))])
train_dataloader = dict(batch_size=4, dataset=dict(input_size=560, max_boxes=20))
test_dataloader = dict(dataset=dict(input_size=560))
optim_wrapper = dict(clip_grad=None)  # AdamW betas (0.9, 0.98), eps 1e-6: the reference's defaults for a 'vit' model
custom_hooks = [dict(type='OVInitWeightsHook'), dict(type='OVExportCLIPHook', name='declip_export')]
