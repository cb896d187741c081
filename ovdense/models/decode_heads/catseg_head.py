"""CAT-Seg's cost aggregation (Cho et al., CVPR 2024): a cost volume between CLIP's dense features and the class text
embeddings, aggregated spatially (Swin blocks guided by the image) and across classes (linear attention guided by
the text), decoded with guidance from two intermediate CLIP blocks. Module and parameter names follow the reference
(``KU-CVLAB/CAT-Seg`` ``cat_seg/modeling/transformer/model.py``), so its checkpoints map key for key."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ...registry import register


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w, w, C), windows row-major per image."""
    B, H, W, C = x.shape
    return x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, C)


def window_reverse(windows: torch.Tensor, w: int, H: int, W: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: (B * H/w * W/w, w, w, C) -> (B, H, W, C)."""
    B = windows.shape[0] // ((H // w) * (W // w))
    return windows.view(B, H // w, W // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


class WindowAttention(nn.Module):
    """Window attention whose queries and keys also see the guidance channels (values do not)."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N_windows * B, N, dim + guidance) -> (N_windows * B, N, dim); ``mask`` (N_windows, N, N) additive."""
        B_, N, _ = x.shape
        q, k = (f(x).reshape(B_, N, self.num_heads, -1).transpose(1, 2) for f in (self.q, self.k))
        v = self.v(x[:, :, :self.dim]).reshape(B_, N, self.num_heads, -1).transpose(1, 2)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(B_ // nw, nw, self.num_heads, N, N) + mask[None, :, None]).view(-1, self.num_heads, N, N)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(B_, N, -1))


class Mlp(nn.Module):
    """timm's ``Mlp`` (fc1, exact GELU, fc2): the reference's key names."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """A Swin block on a (H, W) grid of tokens with the (normed) guidance concatenated to its queries' and keys'
    inputs; ``shift`` > 0 rolls the grid and masks across regions with -100 (the reference's value)."""

    def __init__(self, dim: int, guidance_dim: int, resolution: tuple[int, int], num_heads: int, window: int,
                 shift: int) -> None:
        super().__init__()
        self.resolution = tuple(resolution)
        if min(self.resolution) <= window:
            window, shift = min(self.resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 4)
        mask = None
        if shift:
            H, W = self.resolution
            img = torch.zeros(1, H, W, 1)
            cnt = 0
            for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                    img[:, hs, ws, :] = cnt
                    cnt += 1
            m = window_partition(img, window).view(-1, window * window)
            mask = m[:, None] - m[:, :, None]
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        self.register_buffer('attn_mask', mask)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """(B', H*W, dim), guidance (B', H*W, g) -> (B', H*W, dim)."""
        H, W = self.resolution
        B, L, C = x.shape
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        if guidance is not None:
            x = torch.cat([x, guidance.view(B, H, W, -1)], -1)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        win = window_partition(x, self.window)
        out = self.attn(win.view(-1, self.window * self.window, win.shape[-1]), self.attn_mask)
        x = window_reverse(out.view(-1, self.window, self.window, C), self.window, H, W)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.reshape(B, H * W, C)
        return x + self.mlp(self.norm2(x))


class SwinTransformerBlockWrapper(nn.Module):
    """Spatial aggregation: per class, a plain then a shifted Swin block, guided by the image."""

    def __init__(self, dim: int, guidance_dim: int, resolution: tuple[int, int], num_heads: int, window: int) -> None:
        super().__init__()
        self.block_1 = SwinTransformerBlock(dim, guidance_dim, resolution, num_heads, window, 0)
        self.block_2 = SwinTransformerBlock(dim, guidance_dim, resolution, num_heads, window, window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, T, H, W), guidance (B, g, H, W) -> (B, C, T, H, W)."""
        B, C, T, H, W = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
        if guidance is not None:
            g = guidance.flatten(2).transpose(1, 2)  # (B, HW, g)
            guidance = self.guidance_norm(g[:, None].expand(B, T, H * W, g.shape[-1]).reshape(B * T, H * W, -1))
        x = self.block_2(self.block_1(x, guidance), guidance)
        return x.view(B, T, H, W, C).permute(0, 4, 1, 2, 3)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """"Transformers are RNNs" attention, (N, L, H, D) each -> (N, L, H, D): elu + 1 feature maps, values divided by
    the length S and the result multiplied by it (the reference's fp16 guard)."""
    Q, K = F.elu(q) + 1, F.elu(k) + 1
    S = v.shape[1]
    KV = torch.einsum('nshd,nshv->nhdv', K, v / S)
    Z = 1 / (torch.einsum('nlhd,nhd->nlh', Q, K.sum(1)) + eps)
    return torch.einsum('nlhd,nhdv,nlh->nlhv', Q, KV, Z) * S


class AttentionLayer(nn.Module):
    """Class attention: queries and keys from the tokens and the text guidance, values from the tokens; linear
    attention, no output projection."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        self.nheads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        xg = torch.cat([x, guidance], -1) if guidance is not None else x
        q, k, v = (t.view(*t.shape[:2], self.nheads, -1) for t in (self.q(xg), self.k(xg), self.v(x)))
        return linear_attention(q, k, v).flatten(2)


class ClassTransformerLayer(nn.Module):
    """Class aggregation at every (pooled) pixel: the classes padded to ``pad_len`` with learnt tokens (so the
    attention always sees ``pad_len`` tokens), attention + MLP residuals on the pooled tokens, bilinear (align
    corners) back to the grid, added to the input again (the reference's double residual)."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, pooling: Sequence[int] | None, pad_len: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(tuple(pooling)) if pooling is not None else nn.Identity()
        self.attention = AttentionLayer(dim, guidance_dim, num_heads)
        self.MLP = nn.Sequential(nn.Linear(dim, dim * 4), nn.ReLU(), nn.Linear(dim * 4, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.pad_len = pad_len
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim)) if pad_len > 0 else None
        self.padding_guidance = nn.Parameter(torch.zeros(1, 1, guidance_dim)) if pad_len > 0 and guidance_dim > 0 \
            else None

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, T, H, W), guidance (B, T, g) -> (B, C, T, H, W)."""
        B, C, T, H, W = x.shape
        xp = self.pool(x.transpose(1, 2).reshape(B * T, C, H, W))
        Hp, Wp = xp.shape[-2:]
        xp = xp.view(B, T, C, Hp, Wp)
        pad = self.pad_len - T if self.padding_tokens is not None else 0
        if pad > 0:
            xp = torch.cat([xp, self.padding_tokens.view(1, 1, C, 1, 1).expand(B, pad, C, Hp, Wp)], 1)
            if guidance is not None and self.padding_guidance is not None:
                guidance = torch.cat([guidance, self.padding_guidance.expand(B, pad, -1)], 1)
        n = xp.shape[1]
        tokens = xp.permute(0, 3, 4, 1, 2).reshape(B * Hp * Wp, n, C)
        if guidance is not None:
            guidance = guidance[:, None].expand(B, Hp * Wp, n, guidance.shape[-1]).reshape(B * Hp * Wp, n, -1)
        tokens = tokens + self.attention(self.norm1(tokens), guidance)
        tokens = tokens + self.MLP(self.norm2(tokens))
        xp = tokens.view(B, Hp, Wp, n, C).permute(0, 3, 4, 1, 2).reshape(B * n, C, Hp, Wp)
        xp = F.interpolate(xp, size=(H, W), mode='bilinear', align_corners=True).view(B, n, C, H, W)[:, :T]
        return x + xp.transpose(1, 2)


class AggregatorLayer(nn.Module):
    def __init__(self, dim: int, text_guidance_dim: int, appearance_guidance_dim: int, num_heads: int,
                 resolution: tuple[int, int], pooling: Sequence[int] | None, window: int, pad_len: int) -> None:
        super().__init__()
        self.swin_block = SwinTransformerBlockWrapper(dim, appearance_guidance_dim, resolution, num_heads, window)
        self.attention = ClassTransformerLayer(dim, text_guidance_dim, num_heads, pooling, pad_len)

    def forward(self, x: torch.Tensor, appearance: torch.Tensor | None, text: torch.Tensor | None) -> torch.Tensor:
        return self.attention(self.swin_block(x, appearance), text)


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(cout // 16, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(cout // 16, cout), nn.ReLU(inplace=True))


class Up(nn.Module):
    """x2 transposed conv, the guidance (repeated per class) concatenated, a double conv."""

    def __init__(self, cin: int, cout: int, guidance: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin - guidance, 2, 2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if guidance is not None:
            T = x.shape[0] // guidance.shape[0]
            x = torch.cat([x, guidance.repeat_interleave(T, 0)], 1)
        return self.conv(x)


class Aggregator(nn.Module):
    """The reference's ``Aggregator``: cost volume -> ``conv1`` embedding -> ``num_layers`` x (Swin, class attention)
    -> two guided up-samplings -> one logit per class and pixel (4x the feature grid)."""

    def __init__(self, *, text_guidance_dim: int, text_guidance_proj_dim: int, appearance_guidance_dim: int,
                 appearance_guidance_proj_dim: int, decoder_dims: Sequence[int], decoder_guidance_dims: Sequence[int],
                 decoder_guidance_proj_dims: Sequence[int], num_layers: int, nheads: int, hidden_dim: int,
                 pooling_size: Sequence[int] | None, feature_resolution: Sequence[int], window_size: int,
                 prompt_channel: int, pad_len: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            AggregatorLayer(hidden_dim, text_guidance_proj_dim, appearance_guidance_proj_dim, nheads,
                            tuple(feature_resolution), pooling_size, window_size, pad_len) for _ in range(num_layers)])
        self.conv1 = nn.Conv2d(prompt_channel, hidden_dim, 7, padding=3)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(appearance_guidance_dim, appearance_guidance_proj_dim, 3, padding=1), nn.ReLU())
        self.text_guidance_projection = nn.Sequential(nn.Linear(text_guidance_dim, text_guidance_proj_dim), nn.ReLU())
        self.decoder_guidance_projection = nn.ModuleList([
            nn.Sequential(nn.Conv2d(d, p, 3, padding=1), nn.ReLU())
            for d, p in zip(decoder_guidance_dims, decoder_guidance_proj_dims)])
        self.decoder1 = Up(hidden_dim, decoder_dims[0], decoder_guidance_proj_dims[0])
        self.decoder2 = Up(decoder_dims[0], decoder_dims[1], decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(decoder_dims[1], 1, 3, padding=1)
        self.pad_len = pad_len

    @staticmethod
    def correlation(img: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine cost volume (B, P, T, H, W) of features (B, C, H, W) and text (B, T, P, C)."""
        return torch.einsum('bchw,btpc->bpthw', F.normalize(img, dim=1), F.normalize(text, dim=-1))

    def corr_embed(self, corr: torch.Tensor) -> torch.Tensor:
        B, P, T, H, W = corr.shape
        return self.conv1(corr.transpose(1, 2).reshape(B * T, P, H, W)).view(B, T, -1, H, W).transpose(1, 2)

    def conv_decoder(self, x: torch.Tensor, guidance: Sequence[torch.Tensor | None]) -> torch.Tensor:
        B, C, T, H, W = x.shape
        x = self.decoder1(x.transpose(1, 2).reshape(B * T, C, H, W), guidance[0])
        x = self.head(self.decoder2(x, guidance[1]))
        return x.view(B, T, *x.shape[-2:])

    def forward(self, img: torch.Tensor, text: torch.Tensor, guidance: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, T, 4H, 4W) logits of features (B, C, H, W), text embeddings (B, T, P, C) and the guidance maps
        (the dense features, then the two decoder guidance maps). More than ``pad_len`` classes: each image keeps
        the ``pad_len`` classes of largest maximum cosine, the others get the logit -100 (the reference's rule)."""
        corr = self.correlation(img, text)
        classes, T = None, text.shape[1]
        if 0 < self.pad_len < T:
            score = corr.transpose(1, 2).flatten(2).max(-1).values  # (B, T)
            classes = score.topk(self.pad_len, dim=-1).indices.sort(-1).values
            text = torch.gather(F.normalize(text, dim=-1), 1,
                                classes[..., None, None].expand(-1, -1, *text.shape[-2:]))
            corr = self.correlation(img, text)
        x = self.corr_embed(corr)
        appearance = self.guidance_projection(guidance[0])
        decoder = [proj(g) for proj, g in zip(self.decoder_guidance_projection, guidance[1:])]
        t = text.mean(-2)
        t = self.text_guidance_projection(t / t.norm(dim=-1, keepdim=True))
        for layer in self.layers:
            x = layer(x, appearance, t)
        logits = self.conv_decoder(x, decoder)
        if classes is not None:
            out = logits.new_full((logits.shape[0], T, *logits.shape[-2:]), -100.0)
            logits = out.scatter(1, classes[..., None, None].expand(-1, -1, *logits.shape[-2:]), logits)
        return logits


@register('MODELS', mmdet=False)
class OVCATSegHead(BaseModule):
    """CAT-Seg's head: the guidance up-samplers of two intermediate CLIP blocks and the :class:`Aggregator`.

    ``forward(dense, guidance, text)``: ``dense`` (B, D, h, w) the CLIP's dense features (the cost volume's and the
    appearance guidance's input), ``guidance`` two (B, width, h, w) block outputs, ``text`` (T, P, D) class
    embeddings (P prompts each); returns (B, T, 4h, 4w) logits.

    Args:
        width: the CLIP ViT's width (the guidance blocks' channels; the reference's ``proj_dim``).
        embed_dim: the CLIP's joint embedding dimension (text and appearance guidance inputs).
        text_guidance_proj_dim, appearance_guidance_proj_dim, decoder_dims, decoder_guidance_dims,
        decoder_guidance_proj_dims, num_layers, num_heads, hidden_dim, feature_resolution, window_size, pad_len:
            the reference's ``SEM_SEG_HEAD`` values (ViT-B/16: 128, 128, (64, 32), (256, 128), (32, 16), 2, 4,
            128, (24, 24), 12, 256).
        pooling_size: class-attention pooling in training (reference 2 x 2); evaluation pools 1 x 1 (``eval.sh``).
        prompt_channel: prompts per class (templates).
    """

    def __init__(self, width: int, embed_dim: int, *, text_guidance_proj_dim: int = 128,
                 appearance_guidance_proj_dim: int = 128, decoder_dims: Sequence[int] = (64, 32),
                 decoder_guidance_dims: Sequence[int] = (256, 128), decoder_guidance_proj_dims: Sequence[int] = (32, 16),
                 num_layers: int = 2, num_heads: int = 4, hidden_dim: int = 128, pooling_size: Sequence[int] = (2, 2),
                 feature_resolution: Sequence[int] = (24, 24), window_size: int = 12, prompt_channel: int = 1,
                 pad_len: int = 256, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.upsample1 = nn.ConvTranspose2d(width, decoder_guidance_dims[0], 2, 2)
        self.upsample2 = nn.ConvTranspose2d(width, decoder_guidance_dims[1], 4, 4)
        self.pooling_size = tuple(pooling_size)
        self.transformer = Aggregator(
            text_guidance_dim=embed_dim, text_guidance_proj_dim=text_guidance_proj_dim,
            appearance_guidance_dim=embed_dim, appearance_guidance_proj_dim=appearance_guidance_proj_dim,
            decoder_dims=decoder_dims, decoder_guidance_dims=decoder_guidance_dims,
            decoder_guidance_proj_dims=decoder_guidance_proj_dims, num_layers=num_layers, nheads=num_heads,
            hidden_dim=hidden_dim, pooling_size=pooling_size, feature_resolution=feature_resolution,
            window_size=window_size, prompt_channel=prompt_channel, pad_len=pad_len)
        self.feature_resolution = tuple(feature_resolution)

    def train(self, mode: bool = True) -> 'OVCATSegHead':
        """Class attention pools ``pooling_size`` in training and 1 x 1 at evaluation (the reference's configs)."""
        super().train(mode)
        for layer in self.transformer.layers:
            layer.attention.pool = nn.AvgPool2d(self.pooling_size) if mode else nn.AvgPool2d(1)
        return self

    def forward(self, dense: torch.Tensor, guidance: Sequence[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        if tuple(dense.shape[-2:]) != self.feature_resolution:
            raise ValueError(f'CAT-Seg aggregates a {self.feature_resolution} feature grid (its Swin windows and '
                             f'masks are built for it); got {tuple(dense.shape[-2:])}: resize the CLIP input')
        g = [self.upsample1(guidance[0]), self.upsample2(guidance[1])]
        text = text[None].expand(dense.shape[0], *text.shape)
        return self.transformer(dense, text, [dense, *g])
