"""Self-supervised VFM pretraining: view correspondences, a few Runner iterations, the export loads as a proxy."""
import torch

from ovdense.clip import build_vfm
from ovdense.datasets import OVSyntheticViewsDataset
from ovdense.models import OVCLIPViT, OVVFMPretrainer

TINY = dict(embed_dim=32, depth=1, num_heads=2, img_size=32)


def test_correspondences_follow_the_crop_boxes():
    # view A: the left half of the scene; view B: the whole scene flipped
    a = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    b = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    where, inside = OVVFMPretrainer.correspondences(a, b, 2)
    # A's patch centres (x 0.125 / 0.375 of the scene) are at 0.875 / 0.625 of flipped B
    assert inside.all()
    assert torch.allclose(where[0, :, 0], torch.tensor([0.875, 0.625, 0.875, 0.625]) * 2 - 1)
    assert torch.allclose(where[0, :, 1], torch.tensor([0.25, 0.25, 0.75, 0.75]) * 2 - 1)
    _, inside = OVVFMPretrainer.correspondences(b, a, 2)  # flipped B's left column shows the scene's right half
    assert inside.tolist() == [[False, True, False, True]]


def test_views_dataset_gives_two_views_and_their_boxes():
    ds = OVSyntheticViewsDataset(4, seed=1, image_size=64, view_size=32)
    s = ds[0]
    assert s['inputs'].shape == (2, 3, 32, 32) and s['inputs'].dtype == torch.uint8
    box = s['data_samples']
    assert box.shape == (2, 4) and ((box >= 0) & (box <= 1)).all()
    assert not torch.equal(ds[0]['inputs'], s['inputs'])  # new views at every access


def test_runner_trains_a_few_iterations_and_exports_a_loadable_proxy(tmp_path, tiny_clip):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile('configs/synthetic/tinyvfm_vit-t8_synthetic-128.py')
    cfg.work_dir = str(tmp_path)
    cfg.model.model_kwargs = TINY
    cfg.train_dataloader.batch_size = 4
    cfg.train_dataloader.dataset.update(num_images=16, image_size=64, view_size=32)
    cfg.train_cfg.max_iters = 3
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 3
    runner = Runner.from_cfg(cfg)
    model = runner.model
    student0 = {k: v.clone() for k, v in model.student.state_dict().items()}
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    runner.train()
    moved = [k for k, v in model.student.state_dict().items() if not torch.equal(v, student0[k])]
    assert moved and all(not p.requires_grad for p in model.teacher.parameters())
    # the teacher followed the student by its moving average, it was not trained
    k = moved[0]
    assert not torch.equal(model.teacher.state_dict()[k], teacher0[k])
    vfm = build_vfm(config_file=tmp_path / 'tinyvfm_synthetic.json', checkpoint=tmp_path / 'tinyvfm_synthetic.safetensors')
    vfm.load_weights()
    teacher = model.teacher.model.state_dict()
    assert all(torch.allclose(v.float(), teacher[n].float(), atol=1e-2) for n, v in vfm.model.state_dict().items())
    bb = OVCLIPViT(tiny_clip, dict(type='OVProxyCLIP', proxy=vfm)).eval()
    with torch.no_grad():
        assert bb.dense_features(torch.randn(2, 3, 64, 64)).shape == (2, 32, 8, 8)
