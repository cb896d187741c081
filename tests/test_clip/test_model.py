import os
import pickle
import weakref

import pytest
import torch

from ovdense.clip import CheckpointError, PretrainedWeightsUnavailable, build_clip, load_state_dict_file
from ovdense.clip import hub, model as clip_model, templates
from ovdense.testing import TINY_CLIP_CFG, golden_dir

from ..conftest import requires_shared


@requires_shared
def test_golden_encode_parity(golden_clip):
    enc = torch.load(golden_dir() / 'encode_seed0.pt', weights_only=True)
    with torch.no_grad():
        assert torch.equal(golden_clip.tokenize(enc['prompts']), enc['token_ids'])
        img = golden_clip.encode_image(enc['input'])
        txt = golden_clip.encode_text(enc['prompts'])
    assert (img - enc['image_embedding']).abs().max() < 1e-5
    assert (txt - enc['text_embeddings']).abs().max() < 1e-5
    assert torch.allclose(golden_clip.logit_scale, enc['logit_scale'])


@requires_shared
def test_openai_state_dict_pt_infers_architecture(tmp_path, golden_clip):
    # the same weights saved as an OpenAI-style .pt state dict (with its extra int keys, DDP prefix)
    state = {f'module.{k}': v for k, v in golden_clip.model.state_dict().items()}
    path = tmp_path / 'ViT-tiny.pt'
    torch.save(state, path)
    clip = build_clip(checkpoint=path)
    clip.load_weights()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(clip.encode_image(x), golden_clip.encode_image(x), atol=1e-6)


def test_missing_checkpoint():
    with pytest.raises(CheckpointError, match='not found'):
        build_clip(model_cfg=TINY_CLIP_CFG, checkpoint='/nonexistent/weights.pt')


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not a safetensors file')
    with pytest.raises(CheckpointError, match='safetensors'):
        load_state_dict_file(bad)
    bad_pt = tmp_path / 'bad.pt'
    bad_pt.write_bytes(b'garbage')
    with pytest.raises(CheckpointError, match='weights-only'):
        load_state_dict_file(bad_pt)


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /tmp/ovdense_pwned',))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': Evil()}, f)
    with pytest.raises(CheckpointError):
        load_state_dict_file(path)
    assert not os.path.exists('/tmp/ovdense_pwned')


def test_wrong_checkpoint_for_model(tmp_path, tiny_clip):
    path = tmp_path / 'w.pt'
    state = tiny_clip.model.state_dict()
    state['visual.proj'] = torch.zeros(3, 3)
    torch.save(state, path)
    clip = build_clip(model_cfg=TINY_CLIP_CFG, checkpoint=path)
    with pytest.raises(CheckpointError, match='does not fit'):
        clip.load_weights()
    del state['visual.proj']
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='missing keys'):
        clip.load_weights()


def test_unknown_model_and_tag():
    with pytest.raises(ValueError, match='unknown open_clip model'):
        build_clip('ViT-Nope-99')
    with pytest.raises(ValueError, match=r"valid tags: \[.*'openai'"):
        build_clip('ViT-B-16', pretrained='no-such-tag')


def test_a_pretrained_tag_sets_the_activation_its_weights_were_trained_with():
    """open_clip's 'ViT-B-16' config has the exact GELU; OpenAI's weights were trained with QuickGELU (open_clip only
    warns of the mismatch): with the tag 'openai' the tower is the QuickGELU one, and the text cache key says so."""
    from open_clip.model import QuickGELU
    openai, laion = build_clip('ViT-B-16', 'openai'), build_clip('ViT-B-16', 'laion2b_s34b_b88k')
    assert isinstance(openai.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(openai.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert type(laion.model.visual.transformer.resblocks[0].mlp.gelu) is torch.nn.GELU
    assert openai.text_architecture() == build_clip('ViT-B-16-quickgelu').text_architecture()
    assert openai.text_architecture() != laion.text_architecture()


def test_offline_pretrained_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, '_network_reachable', lambda host, timeout=3.0: False)
    with pytest.raises(PretrainedWeightsUnavailable) as e:
        hub.resolve_pretrained('ViT-B-16', 'openai', cache_dir=str(tmp_path))
    msg = str(e.value)
    assert "'openai'" in msg and 'checkpoint=PATH' in msg and '--checkpoint' in msg


def test_vit_tower_rejects_unsupported(tiny_clip):
    from open_clip import CLIP
    resnet = CLIP(embed_dim=32, vision_cfg=dict(layers=[1, 1, 1, 1], width=16, image_size=64),
                  text_cfg=TINY_CLIP_CFG['text_cfg'])
    clip = clip_model.CLIPModel(resnet, tiny_clip.tokenizer, name='rn-tiny')
    with pytest.raises(ValueError, match='VisionTransformer'):
        clip.vit_tower()
    tower = tiny_clip.vit_tower()
    assert tower.patch_size == 16 and tower.num_heads == 2 and tower.native_grid == 4


def test_text_fingerprint_tracks_weights(tiny_clip):
    from ovdense.testing import tiny_clip as make
    other = make(seed=1)
    assert tiny_clip.text_fingerprint() != other.text_fingerprint()
    assert make(seed=0).text_fingerprint() == tiny_clip.text_fingerprint()


def test_prompt_templates():
    assert len(templates.prompt_templates('openai')) == 80
    assert len(templates.prompt_templates('maskclip')) == 85
    with pytest.raises(ValueError, match="valid: \\['maskclip', 'none', 'openai', 'simple'\\]"):
        templates.prompt_templates('nope')


def test_weights_that_cannot_be_the_models_are_refused_naming_the_tensor(tmp_path):
    """NaN / infinite values, integer or boolean tensors where the model holds floats (a cast would change them
    silently), and an empty file: each a CheckpointError naming what is wrong."""
    from safetensors.torch import save_file

    from ovdense.clip import CheckpointError, build_clip
    from ovdense.testing import TINY_CLIP_CFG
    src = build_clip(model_cfg=TINY_CLIP_CFG)
    state = {k: v.clone().contiguous() for k, v in src.model.state_dict().items()}
    key = 'visual.transformer.resblocks.0.attn.in_proj_weight'
    for name, value, match in [('nan', state[key].clone().fill_(float('nan')), f'tensor {key} has .* NaN or infinite'),
                               ('int', state[key].to(torch.int32), f'tensor {key} is torch.int32'),
                               ('bool', state[key] > 0, f'tensor {key} is torch.bool')]:
        path = tmp_path / f'{name}.safetensors'
        save_file({**state, key: value}, str(path))
        with pytest.raises(CheckpointError, match=match):
            build_clip(model_cfg=TINY_CLIP_CFG, checkpoint=path).load_weights()
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='EOFError .an empty or truncated file'):
        build_clip(model_cfg=TINY_CLIP_CFG, checkpoint=empty).load_weights()
    good = tmp_path / 'good.safetensors'
    save_file(state, str(good))
    build_clip(model_cfg=TINY_CLIP_CFG, checkpoint=good).load_weights()  # the same file, untouched, loads


def test_safetensors_weights_stream_in_one_tensor_at_a_time(tmp_path, tiny_clip, monkeypatch):
    """A .safetensors file is loaded a tensor at a time (never a second copy of every weight), all or nothing:
    a NaN or a wrong shape anywhere in the file leaves the model's weights as they were."""
    from safetensors.torch import save_file
    from ovdense.clip import formats
    state = {k: v.clone().contiguous() + 0.5 for k, v in tiny_clip.model.state_dict().items()}
    path = tmp_path / 'w.safetensors'
    save_file(state, path)
    reads, alive, live = [], [], []
    get = formats.TensorFile.__getitem__

    def counted(self, key):
        reads.append(key)
        alive.append(sum(r() is not None for r in live))  # tensors read earlier and still held when this one is read
        t = get(self, key)
        live.append(weakref.ref(t))
        return t
    monkeypatch.setattr(formats.TensorFile, '__getitem__', counted)
    clip = build_clip(model_cfg=TINY_CLIP_CFG, checkpoint=path)
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    bad = dict(state, **{'visual.proj': torch.full_like(state['visual.proj'], float('nan'))})
    save_file(bad, path)
    with pytest.raises(CheckpointError, match='NaN'):
        clip.load_weights()
    wide = dict(state, **{'visual.proj': torch.zeros(3, 3)})
    save_file(wide, path)
    reads.clear()
    with pytest.raises(CheckpointError, match=r'differ in shape.*visual\.proj'):
        clip.load_weights()
    assert not reads  # shapes come from the header: nothing read
    assert all(torch.equal(v, before[k]) for k, v in clip.model.state_dict().items())
    save_file(state, path)
    alive.clear()
    clip.load_weights()
    assert all(torch.equal(v, state[k]) for k, v in clip.model.state_dict().items())
    assert len(alive) == 2 * len(state) and max(alive) <= 1  # read twice (check, copy), at most 2 tensors in memory


def test_causal_text_towers_run_only_up_to_the_longest_text(tiny_clip):
    """CLIP's causal, end-of-text-pooled tower runs on the batch's tokens up to its longest text (the padding
    cannot reach the pooled token): the same embeddings as open_clip's full-length ``encode_text``, batch of 3."""
    from ovdense.testing import tiny_siglip
    prompts = ['a photo of a dog.', 'a red double-decker bus.', 'cat']  # shorter than the context (16 here)
    tokens = tiny_clip.tokenize(prompts)
    seen = []
    hook = tiny_clip.text_tower.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            ours = tiny_clip.encode_text(prompts, normalize=True)
            full = tiny_clip.model.encode_text(tokens, normalize=True)
    finally:
        hook.remove()
    longest = int(tokens.argmax(-1).max()) + 1
    assert tiny_clip.text_is_causal_eot_pooled() and seen == [longest, tokens.shape[1]] and longest < tokens.shape[1]
    assert ours.shape == (3, full.shape[1]) and (ours - full).abs().max() < 1e-6
    siglip = tiny_siglip()  # no causal mask, pooled at the last token: the whole context, as open_clip runs it
    assert not siglip.text_is_causal_eot_pooled()
    with torch.no_grad():
        ids = torch.randint(1, 100, (2, siglip.tokenize(['x']).shape[1]))
        assert torch.equal(siglip.encode_text(ids), siglip.model.encode_text(ids))


def test_the_towers_quick_gelu_is_open_clips_bit_for_bit():
    """Without autograd one temporary instead of three; the same values, and gradients where they are needed."""
    from open_clip.model import QuickGELU
    from ovdense.clip.towers import _activation
    x = torch.randn(37, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(_activation(x, 'model', QuickGELU()), QuickGELU()(x))
        assert torch.equal(_activation(x, 'quick_gelu', torch.nn.GELU()), QuickGELU()(x))
    w = x.clone().requires_grad_()
    _activation(w, 'model', QuickGELU()).sum().backward()
    ref = x.clone().requires_grad_()
    QuickGELU()(ref).sum().backward()
    assert torch.equal(w.grad, ref.grad)



def test_the_towers_mlp_runs_bias_and_quick_gelu_in_one_kernel_without_autograd(monkeypatch):
    """Inference: the product without bias, then ovdense's kernel (a few ulp from open_clip's MLP); with autograd
    open_clip's own ops, bit for bit, and their gradients; a GELU tower takes the kernel only when told QuickGELU."""
    import torch.nn as nn
    import torch.nn.functional as F
    from open_clip.model import QuickGELU
    import ovdense.clip.towers as towers
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(32, 128), nn.Linear(128, 32)

    def block(act):
        return towers.ViTBlock(nn.LayerNorm(32), nn.MultiheadAttention(32, 2), nn.Identity(), nn.LayerNorm(32), fc1,
                               act, fc2, nn.Identity())
    orig, used = towers._fc1_quick_gelu, []

    def spy(fc, x):
        h = orig(fc, x)
        used.append(h is not None)
        return h
    monkeypatch.setattr(towers, '_fc1_quick_gelu', spy)
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        ref = fc2(QuickGELU()(fc1(x)))
        assert torch.allclose(block(QuickGELU()).mlp(x), ref, rtol=1e-5, atol=1e-6) and used == [True]
        assert torch.allclose(block(nn.GELU()).mlp(x, 'quick_gelu'), ref, rtol=1e-5, atol=1e-6) and used == [True] * 2
        assert torch.equal(block(nn.GELU()).mlp(x), fc2(F.gelu(fc1(x)))) and len(used) == 2
    xg = x.clone().requires_grad_()
    out = block(QuickGELU()).mlp(xg)
    assert used[-1] is False and torch.equal(out, fc2(QuickGELU()(fc1(x))))
    out.sum().backward()
    ref_x = x.clone().requires_grad_()
    fc2(QuickGELU()(fc1(ref_x))).sum().backward()
    assert torch.equal(xg.grad, ref_x.grad)
