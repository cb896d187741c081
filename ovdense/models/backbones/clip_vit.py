"""Dense CLIP ViT: per-patch features in the text space, with the known last-block variants."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...clip import CLIPModel, ViTBlock, ViTTower, build_clip, build_vfm
from ...clip.vfm import IMAGENET_MEAN, IMAGENET_STD
from ...registry import register

DENSE_MODES = ('vanilla', 'maskclip', 'sclip', 'clearclip', 'naclip', 'proxyclip')
PROXY_MODES = ('proxyclip',)  # the modes that need a vision foundation model (``proxy=``)
CLIP_ONLY_MODES = tuple(m for m in DENSE_MODES if m not in PROXY_MODES)
# CLIP input (OpenAI statistics) -> VFM input (ImageNet statistics), as ProxyCLIP's UnNormalize + Normalize
_OPENAI_MEAN, _OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
POS_INTERP = ('sclip', 'bicubic', 'bilinear')
PATCH_PADDING = ('drop', 'corner')
ACTIVATIONS = ('model', 'gelu', 'quick_gelu')


def _check(value: Any, valid: Sequence, what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} '{value}'; valid: {list(valid)}")


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int], *, method: str = 'sclip',
                          num_prefix: int = 1) -> torch.Tensor:
    """Position embedding (P + h*w, C) for a h x w patch grid from the native (P + g*g, C) one, P = ``num_prefix``
    rows for the CLS token (1) or none (0: SigLIP).

    Methods (the prefix rows are always kept as they are):
        ``'sclip'``: SCLIP/NACLIP/ClearCLIP: unchanged when h*w == g*g, else bicubic with
            ``scale_factor=((h+0.1)/g, (w+0.1)/g)``, align_corners False.
        ``'bicubic'``: MaskCLIP/CLIPSelf: bicubic to the size (h, w), align_corners False.
        ``'bilinear'``: DenseCLIP: bilinear to the size (h, w), align_corners False.
    """
    _check(method, POS_INTERP, 'position interpolation')
    h, w = grid
    n = pos.shape[0] - num_prefix
    g = int(math.isqrt(n))
    if h * w == n and (method == 'sclip' or (h, w) == (g, g)):
        return pos
    cls_pos, patch_pos = pos[:num_prefix], pos[num_prefix:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    if method == 'sclip':
        patch_pos = F.interpolate(patch_pos, scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode='bicubic',
                                  align_corners=False)
    else:
        patch_pos = F.interpolate(patch_pos, size=(h, w), mode=method, align_corners=False)
    assert patch_pos.shape[-2:] == (h, w), (patch_pos.shape, grid)
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(h * w, -1)])


def neighbourhood_bias(h: int, w: int, std: float, *, device: torch.device | None = None,
                       num_prefix: int = 1) -> torch.Tensor:
    """NACLIP's Omega: (P + h*w, P + h*w), exp(-|p - q|^2 / (2 std^2)) between patches, 0 on the P = ``num_prefix``
    CLS rows/columns."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()], 1)
    omega = torch.exp(-torch.cdist(coords, coords).pow(2) / (2 * std ** 2))
    return F.pad(omega, (num_prefix, 0, num_prefix, 0))


@register('MODELS')
class OVCLIPViT(BaseModule):
    """A frozen (by default) CLIP ViT giving per-patch embeddings aligned with text.

    The last block is replaced according to ``mode`` (blocks before it are standard):

    ============  ======================================  ========  =====
    mode          last-block attention                    residual  FFN
    ============  ======================================  ========  =====
    vanilla       softmax(q k^T)                          kept      kept
    maskclip      none: each token's value path only      kept      kept
    sclip         softmax(q q^T) + softmax(k k^T)         kept      kept
    clearclip     softmax(q q^T)                          dropped   dropped
    naclip        softmax(k k^T + Omega), Gaussian Omega  dropped   dropped
    proxyclip     VFM patch affinity (ProxyCLIP, below)   dropped   dropped
    ============  ======================================  ========  =====

    then ``ln_post`` on every token and the projection into the text space. Towers without a CLS token
    (SigLIP) have only patch tokens, and their projection is the MAP head's value path
    (:class:`~ovdense.clip.adapter.MAPHead`): the variants act on the trunk's last block.

    ``proxyclip``: a vision foundation model (``proxy``, :func:`ovdense.clip.build_vfm`) sees the same
    image, re-normalised from CLIP's statistics to ImageNet's; its patch features ``E`` (normalised)
    give ``S = E^T E``, ``A = (S - beta * mean(S)) * gamma`` with negatives masked, ``P = softmax(A)``,
    one matrix for all heads; the last block's values (no CLS) are bilinearly resized to the VFM grid
    and ``out_proj(P V)`` is the output, on the VFM grid, without residual, FFN or CLS token.
    ``mean(S)`` is per image (ProxyCLIP takes it over the whole batch, which couples the windows of a
    batch, and reads both grid sides from the height: ``reference_quirks=True`` reproduces both).

    Args:
        clip: a :class:`CLIPModel` or the keyword arguments of :func:`ovdense.clip.build_clip`
            (``model_name``, ``pretrained``, ``checkpoint``, ``config_file``, ``model_cfg``).
        mode: last-block variant, one of ``DENSE_MODES``.
        out_indices: blocks whose patch-token outputs are also returned, as (B, width, h, w) maps.
        pos_interp: position-embedding interpolation, one of ``POS_INTERP``.
        patch_padding: ``'drop'`` leftover pixels (floor(H/p) patches) or zero-pad right/bottom
            (``'corner'``, MaskCLIP).
        naclip_std: std of NACLIP's Gaussian neighbourhood, in patches.
        ln_eps: override every layer norm's epsilon (None: the model's own).
        act: MLP activation, ``'model'`` (the model's own), ``'gelu'`` or ``'quick_gelu'``.
        frozen: no gradients and eval mode for all CLIP weights.
        proxy: ``proxyclip``: a :class:`ovdense.clip.VFM` or :func:`ovdense.clip.build_vfm` kwargs
            (``model_name``, ``checkpoint``, ``model_kwargs`` or ``config_file``), or ``'self'``: the CLIP's
            own patch tokens entering its last block.
        proxy_beta: ``proxyclip``'s beta (1.2).
        proxy_gamma: ``proxyclip``'s gamma (3.0).
        reference_quirks: ``proxyclip``: reproduce the reference's batch-wide similarity mean and its
            height-only grid (non-square windows scrambled) instead of the correct behaviour.
        pretrained: a CLIP checkpoint file (mmseg's model-level ``pretrained``): replaces ``clip``'s checkpoint.
        init_cfg: mmengine init config (unused: weights come from ``clip``).
    """

    def __init__(self, clip: CLIPModel | dict, mode: str = 'vanilla', *, out_indices: Sequence[int] = (),
                 pos_interp: str = 'sclip', patch_padding: str = 'drop', naclip_std: float = 5.0,
                 ln_eps: float | None = None, act: str = 'model', frozen: bool = True,
                 proxy: Any = None, proxy_beta: float = 1.2, proxy_gamma: float = 3.0,
                 reference_quirks: bool = False, pretrained: str | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pretrained is not None:  # mmseg's model-level ``pretrained``: the CLIP checkpoint file
            if not isinstance(clip, dict):
                raise ValueError('pretrained= names a CLIP checkpoint for clip=dict(...); a built CLIPModel has its own')
            clip = dict(clip, checkpoint=pretrained)
        _check(mode, DENSE_MODES, 'dense mode')
        _check(pos_interp, POS_INTERP, 'position interpolation')
        _check(patch_padding, PATCH_PADDING, 'patch padding')
        _check(act, ACTIVATIONS, 'activation')
        self.clip = clip if isinstance(clip, CLIPModel) else build_clip(**clip)
        if (mode in PROXY_MODES) != (proxy is not None):
            raise ValueError(f'modes {list(PROXY_MODES)} need proxy=dict(model_name=..., checkpoint=...) and only they '
                             f"take one (mode '{mode}', proxy {'given' if proxy is not None else 'missing'})")
        self.proxy_self = proxy == 'self'  # the CLIP as its own proxy: the tokens entering its last block
        self.proxy = build_vfm(**proxy) if isinstance(proxy, dict) else (None if self.proxy_self else proxy)
        self.proxy_beta, self.proxy_gamma = float(proxy_beta), float(proxy_gamma)
        self.reference_quirks = reference_quirks
        self.mode = mode
        self.pos_interp = pos_interp
        self.patch_padding = patch_padding
        self.naclip_std = naclip_std
        self.ln_eps = ln_eps
        self.act = act
        self.frozen = frozen
        # a view of the tower's modules (same parameter objects), checked and built once
        self._tower = self.clip.vit_tower()
        if mode in PROXY_MODES and self._tower.family == 'siglip' and not self.proxy_self:
            raise ValueError("proxyclip re-normalises CLIP's input from OpenAI's statistics to ImageNet's for the VFM; "
                             f"'{self.clip.name}' (SigLIP) is normalised with mean = std = 0.5: not supported")
        n = len(self._tower.blocks)
        self.out_indices = tuple(i % n for i in out_indices)
        if frozen:
            self.clip.requires_grad_(False)

    @property
    def tower(self) -> ViTTower:
        return self._tower

    @property
    def embed_dim(self) -> int:
        return self.tower.embed_dim

    @property
    def patch_size(self) -> int:
        return self.tower.patch_size

    def init_weights(self) -> None:
        """Load the CLIP weights named in ``clip`` (once)."""
        if not self._is_init:
            self.clip.load_weights()
            if self.proxy is not None:
                self.proxy.load_weights()
            self._is_init = True

    def train(self, mode: bool = True) -> 'OVCLIPViT':
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    # ------------------------------------------------------------------ pieces
    def _ln(self, ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        if self.ln_eps is None:
            return ln(x)
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, self.ln_eps)

    def _mlp(self, blk: ViTBlock, x: torch.Tensor) -> torch.Tensor:
        return blk.mlp(x, self.act)

    @staticmethod
    def _qkv(blk: ViTBlock, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (B, heads, N, head_dim) (EVA-02: RoPE on the patch tokens' q and k)."""
        return blk.qkv(x, rope)

    @staticmethod
    def _out(blk: ViTBlock, o: torch.Tensor) -> torch.Tensor:
        return blk.out(o)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """CLS (if the tower has one) + patch tokens with position embeddings, after ln_pre: (B, P + h*w, width),
        (h, w)."""
        t = self.tower
        p = t.patch_size
        if self.patch_padding == 'corner' and (x.shape[-2] % p or x.shape[-1] % p):
            x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        feat = t.conv1(x.to(t.conv1.weight.dtype))
        B, C, h, w = feat.shape
        tokens = feat.flatten(2).transpose(1, 2)
        if t.class_embedding is not None:
            tokens = torch.cat([t.class_embedding.to(tokens.dtype).expand(B, 1, C), tokens], 1)
        pos = interpolate_pos_embed(t.positional_embedding, (h, w), method=self.pos_interp, num_prefix=t.num_prefix)
        return self._ln(t.ln_pre, tokens + pos.to(tokens.dtype)), (h, w)

    def block(self, blk: ViTBlock, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> torch.Tensor:
        """A standard pre-norm block."""
        q, k, v = self._qkv(blk, self._ln(blk.ln_1, x), rope)
        x = x + blk.ls_1(self._out(blk, F.scaled_dot_product_attention(q, k, v)))
        return x + blk.ls_2(self._mlp(blk, self._ln(blk.ln_2, x)))

    def last_block(self, blk: ViTBlock, x: torch.Tensor, grid: tuple[int, int],
                   rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The mode's last block."""
        if self.mode == 'vanilla':
            return self.block(blk, x, rope)
        q, k, v = self._qkv(blk, self._ln(blk.ln_1, x), rope)
        scale = q.shape[-1] ** -0.5
        if self.mode == 'maskclip':
            out = self._out(blk, v)
        elif self.mode == 'sclip':
            attn = (torch.softmax(q @ q.transpose(-2, -1) * scale, -1) +
                    torch.softmax(k @ k.transpose(-2, -1) * scale, -1))
            out = self._out(blk, attn @ v)
        elif self.mode == 'clearclip':
            out = self._out(blk, torch.softmax(q @ q.transpose(-2, -1) * scale, -1) @ v)
        else:  # naclip
            omega = neighbourhood_bias(*grid, self.naclip_std, device=x.device, num_prefix=self.tower.num_prefix)
            omega = omega.to(x.dtype)
            out = self._out(blk, torch.softmax(k @ k.transpose(-2, -1) * scale + omega, -1) @ v)
        if self.mode in ('clearclip', 'naclip'):
            return out
        x = x + blk.ls_1(out)
        return x + blk.ls_2(self._mlp(blk, self._ln(blk.ln_2, x)))

    # ------------------------------------------------------------------ proxy
    @staticmethod
    def proxy_input(x: torch.Tensor) -> torch.Tensor:
        """CLIP-normalised images -> ImageNet-normalised, with ProxyCLIP's four float32 operations."""
        def c(v):
            return torch.tensor(v, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return ((x.float() * c(_OPENAI_STD) + c(_OPENAI_MEAN)) - c(IMAGENET_MEAN)) / c(IMAGENET_STD)

    def proxy_attention(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, M, M) ProxyCLIP attention from VFM patch features (B, C, I, J), M = I * J."""
        e = F.normalize(feats.flatten(2), dim=1)
        sim = torch.einsum('bcm,bcn->bmn', e, e)
        mean = sim.mean() if self.reference_quirks else sim.mean((1, 2), keepdim=True)
        sim = (sim - mean * self.proxy_beta) * self.proxy_gamma
        return torch.softmax(sim.masked_fill(sim < 0, float('-inf')), -1)

    def proxy_block(self, blk: ViTBlock, x: torch.Tensor, grid: tuple[int, int],
                    feats: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """ProxyCLIP's last block: (B, I*J, width) from tokens (B, P + h*w, width) and VFM features
        (B, C, I, J), and its grid (I, J)."""
        _, _, v = self._qkv(blk, self._ln(blk.ln_1, x))
        B, nh, _, d = v.shape
        h, w = grid
        I, J = feats.shape[-2:]
        if self.reference_quirks:  # the reference: CLIP grid (w, h), VFM grid (H // p) x (H // p)
            h, w = w, h
            I = J = feats.shape[-2]
            feats = feats.flatten(2).transpose(1, 2).reshape(B, I, J, -1).permute(0, 3, 1, 2)
        grid_v = v[:, :, -h * w:].reshape(B * nh, h, w, d).permute(0, 3, 1, 2)
        grid_v = F.interpolate(grid_v, size=(I, J), mode='bilinear', align_corners=False)
        grid_v = grid_v.permute(0, 2, 3, 1).reshape(B, nh, I * J, d)
        attn = self.proxy_attention(feats).to(v.dtype)
        return self._out(blk, attn[:, None] @ grid_v), (I, J)

    # ----------------------------------------------------------------- outputs
    def forward_tokens(self, x: torch.Tensor) -> dict[str, Any]:
        """Run the tower.

        Args:
            x: (B, 3, H, W) normalised images.

        Returns:
            dict with ``tokens`` (B, P + h*w, D): all tokens after ln_post and the projection, the CLS
            first if the tower has one (``proxyclip``: (B, I*J, D), the VFM grid, no CLS); ``grid`` (h, w) of the patch
            tokens; ``intermediates``: list of (B, width, h, w), one per out_index.
        """
        t = self.tower
        feats = None
        if self.proxy is not None:
            with torch.no_grad():
                feats = self.proxy.patch_features(self.proxy_input(x))
        x, (h, w) = self.embed(x)
        rope = t.rope(h, w, device=x.device)
        inter = []
        last = len(t.blocks) - 1
        for i, blk in enumerate(t.blocks):
            if i == last and self.proxy_self:
                feats = x[:, -h * w:].detach().transpose(1, 2).reshape(x.shape[0], -1, h, w)
            if i == last and feats is not None:
                x, (h, w) = self.proxy_block(blk, x, (h, w), feats)  # the output is on the VFM grid
            else:
                x = self.last_block(blk, x, (h, w), rope) if i == last else self.block(blk, x, rope)
            if i in self.out_indices:
                inter.append(x[:, -h * w:].transpose(1, 2).reshape(x.shape[0], -1, h, w))
        tokens = t.project(self._ln(t.ln_post, x))
        return dict(tokens=tokens, grid=(h, w), intermediates=inter)

    def dense_features(self, x: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
        """(B, D, h, w) per-patch embeddings in the text space (L2-normalised over D if asked)."""
        out = self.forward_tokens(x)
        h, w = out['grid']
        feats = out['tokens'][:, -h * w:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return F.normalize(feats, dim=1) if normalize else feats

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(intermediates..., dense) — the out_indices maps (B, width, h, w), then the dense
        embedding map (B, D, h, w)."""
        out = self.forward_tokens(x)
        h, w = out['grid']
        dense = out['tokens'][:, -h * w:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return (*out['intermediates'], dense)
