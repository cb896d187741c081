# CLIPSelf, grid patches, OpenAI ViT-L/14 at student input 896 (reference: alpha 0.95).
_base_ = ['../_base_/models/clipself.py', '../_base_/datasets/coco_clipself.py']
model = dict(clip=dict(model_name='ViT-L-14', pretrained='openai'), alpha=0.95, text_encoder=dict(vocabulary=dict(dataset='coco80')))
train_dataloader = dict(dataset=dict(input_size=896, patch_size=14))
test_dataloader = dict(dataset=dict(input_size=896, patch_size=14))
