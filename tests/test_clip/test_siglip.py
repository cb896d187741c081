"""SigLIP / SigLIP2 towers (timm, through open_clip) in the dense path: no CLS token, the MAP head's value path as
projection, every last-block variant on the trunk's last block, batch 2 and non-square inputs, SigLIP's sigmoid
text match, every open_clip SigLIP architecture accepted, the Hugging Face tokenizer made on first use."""
import open_clip
import pytest
import torch

from ovdense.clip import PretrainedWeightsUnavailable, build_clip
from ovdense.clip.towers import MAPHead
from ovdense.models import OVCLIPViT
from ovdense.models.methods import registered_methods
from ovdense.testing import (TINY_SIGLIP_CFG, random_images, register_tiny_siglip, tiny_method_config, tiny_queries,
                             tiny_siglip, tiny_vfm)


@pytest.mark.parametrize('name', sorted(registered_methods()))
def test_every_method_batch2_and_non_square(name):
    clip = tiny_siglip()
    vit = OVCLIPViT(clip, tiny_method_config(name, len(clip.vit_tower().blocks)), pos_interp='bicubic').eval()
    assert vit.tower.family == 'siglip' and vit.tower.num_prefix == 0
    text = tiny_queries(clip) if vit.needs_text else None
    x = random_images(2, 48, 80)  # a 3 x 5 grid, every token a patch (ProxyCLIP: the VFM's 6 x 10)
    with torch.no_grad():
        out = vit.dense_features(x, normalize=True, text=text)
        alone = vit.dense_features(x[1:], normalize=True, text=text)
        tokens = vit.forward_tokens(x, text=text).tokens
    grid = (6, 10) if name == 'proxyclip' else (3, 5)
    assert out.shape == (2, 64, *grid) and torch.isfinite(out).all() and tokens.shape == (2, grid[0] * grid[1], 64)
    assert torch.allclose(out[1:], alone, atol=1e-5)  # images of a batch do not see each other


def test_map_value_path_is_the_head_with_identity_attention():
    """With one key the attention pool's softmax is 1: timm's own head on one token is the value path."""
    clip = tiny_siglip()
    head = clip.vit_tower().head
    assert isinstance(head, MAPHead)
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        ours = head(x)
        timm_one_by_one = torch.stack([head.attn_pool(x[:, i:i + 1]) for i in range(5)], 1)
    assert torch.allclose(ours, timm_one_by_one, atol=1e-5)


def test_global_embedding_is_open_clips():
    """Our embedding, blocks and final norm, then the MAP head's pooling: open_clip's encode_image."""
    clip = tiny_siglip().eval()
    vit = OVCLIPViT(clip).eval()
    x = random_images(2, 64, 64)
    with torch.no_grad():
        tokens, _ = vit.embed(x)
        for blk in vit.tower.blocks:
            tokens = vit.block(blk, tokens)
        ours = vit.tower.pool(vit.tower.ln_post(tokens))
        assert torch.allclose(ours, clip.encode_image(x), atol=1e-5)
        # the dense path differs from the pooled one only by the head's attention
        dense = vit.forward_tokens(x).tokens
        assert torch.allclose(dense, vit.tower.project(vit.tower.ln_post(tokens)), atol=1e-6)


@pytest.mark.parametrize('name', [m for m in open_clip.list_models() if m.startswith('ViT-') and 'SigLIP' in m])
def test_every_open_clip_siglip_architecture_is_accepted(name):
    with torch.device('meta'):  # shapes only: no memory, no weights
        clip = build_clip(model_name=name)
        tower = clip.vit_tower()
        assert tower.family == 'siglip' and tower.embed_dim == clip.embed_dim
        assert clip.logit_bias is not None
        vit = OVCLIPViT(clip, dict(type='OVClearCLIP'))
        s = tower.patch_size
        assert vit.dense_features(torch.empty(2, 3, 3 * s, 5 * s)).shape == (2, clip.embed_dim, 3, 5)


def test_hf_tokenizer_is_made_when_used_and_fails_clearly_offline(tmp_path):
    with torch.device('meta'):
        clip = build_clip(model_name='ViT-B-16-SigLIP')  # builds without reading any tokenizer file
    with pytest.raises(PretrainedWeightsUnavailable, match="tokenizer of 'ViT-B-16-SigLIP'.*timm/ViT-B-16-SigLIP"):
        clip.tokenize(['a cat'])
    # a local tokenizer directory in its place works offline
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(['<pad>', '</s>', '<unk>', 'a', 'photo', 'of', 'cat', 'dog'])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='<pad>', eos_token='</s>',
                            unk_token='<unk>').save_pretrained(tmp_path / 'tok')
    register_tiny_siglip()
    cfg = dict(TINY_SIGLIP_CFG, text_cfg=dict(TINY_SIGLIP_CFG['text_cfg'], vocab_size=8,
                                              hf_tokenizer_name=str(tmp_path / 'tok')))
    local = build_clip(model_cfg=cfg)
    ids = local.tokenize(['a photo of a cat', 'a dog'])
    assert ids.shape == (2, 16) and ids[0, :5].tolist() == [3, 4, 5, 3, 6]
    assert local.encode_text(['a cat', 'a dog']).shape == (2, 64)


def test_proxyclip_renormalises_from_the_clips_own_statistics():
    """ProxyCLIP's VFM input is the image re-normalised from the CLIP's statistics (SigLIP: mean = std = 0.5, from
    the model's preprocess config) to ImageNet's."""
    from ovdense.clip.vfm import IMAGENET_MEAN, IMAGENET_STD
    register_tiny_siglip()
    clip = build_clip(model_cfg=dict(TINY_SIGLIP_CFG, preprocess_cfg=dict(mean=(0.5,) * 3, std=(0.5,) * 3)))
    assert clip.image_stats == ((0.5,) * 3, (0.5,) * 3)
    vfm, seen = tiny_vfm(), []
    own = vfm.patch_features
    vfm.patch_features = lambda x: seen.append(x) or own(x)
    vit = OVCLIPViT(clip, dict(type='OVProxyCLIP', proxy=vfm)).eval()
    x = random_images(1, 64, 64)
    with torch.no_grad():
        assert vit.dense_features(x).shape == (1, 64, 8, 8)
    c = lambda v: torch.tensor(v).view(1, 3, 1, 1)  # noqa: E731
    assert torch.allclose(seen[0], (x * 0.5 + 0.5 - c(IMAGENET_MEAN)) / c(IMAGENET_STD), atol=1e-6)


def test_cls_readers_refuse_siglip_clearly():
    from ovdense.models import OVCLIPSelf
    register_tiny_siglip()
    with pytest.raises(ValueError, match='CLS token'):
        OVCLIPSelf(dict(model_cfg=TINY_SIGLIP_CFG))
