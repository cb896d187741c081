"""A dense method of a user's own, outside ovdense (what the README shows): registered into mmseg's MODELS and named
in a config through custom_imports."""
import torch
from mmseg.registry import MODELS

from ovdense.models.methods import OVDenseMethod


@MODELS.register_module()
class KeyKeyAttention(OVDenseMethod):
    """Last block: ``softmax(k k^T / (sqrt(d) * temperature)) v``, no residual, no FFN."""

    name = 'keykey'

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def last_block(self, vit, blk, x, grid, rope=None):
        _, k, v = vit.qkv(blk, vit.ln(blk.ln_1, x), rope)
        attn = torch.softmax(k @ k.transpose(-2, -1) * k.shape[-1] ** -0.5 / self.temperature, -1)
        return vit.out(blk, attn @ v)
