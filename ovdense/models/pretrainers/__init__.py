"""Training a CLIP for dense prediction: CLIPSelf self-distillation, and the pretraining of the shipped
tiny CLIP and tiny vision foundation model on the synthetic world."""
from .clip_pretrainer import OVCLIPPretrainer
from .clipself import OVCLIPSelf
from .vfm_pretrainer import OVVFMPretrainer

__all__ = ['OVCLIPSelf', 'OVCLIPPretrainer', 'OVVFMPretrainer']
