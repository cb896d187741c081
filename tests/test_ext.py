"""ovdense._ext: PAMR's CPU kernels (ovdense/csrc/stencil.cpp: pamr_step, pamr_affinity_logits) and the MLPs' bias +
QuickGELU (activation.cpp: bias_quick_gelu_), each against the same computation written with torch."""
import pytest
import torch
import torch.nn.functional as F

from ovdense import _ext  # noqa: F401  (registers torch.ops.ovdense.pamr_step)

step = torch.ops.ovdense.pamr_step.out
OFFSETS = [(dy * d, dx * d) for d in (1, 3) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _torch_step(x: torch.Tensor, aff: torch.Tensor, offsets, P: int) -> torch.Tensor:
    """The step as torch would write it: each pixel's affinity-weighted neighbours, then the border replicated."""
    H, W = aff.shape[-2:]
    acc = torch.zeros(x.shape[0], H, W, dtype=torch.float64)
    for k, (dy, dx) in enumerate(offsets):
        acc += aff[k].double() * x[:, P + dy:P + dy + H, P + dx:P + dx + W].double()
    return F.pad(acc[None], [P] * 4, mode='replicate')[0].float()


def _padded(C: int, H: int, W: int, P: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    maps = F.pad(torch.randn(1, C, H, W, generator=g), [P] * 4, mode='replicate')[0]
    return maps, torch.softmax(torch.randn(len(OFFSETS), H, W, generator=g), 0)


# widths: a remainder only (< 8), one vector of 8, 16 + remainder, 32 + 8 + remainder; maps: blocks of 4 and single
@pytest.mark.parametrize('C,H,W', [(1, 5, 3), (4, 9, 8), (5, 6, 21), (9, 11, 45), (3, 1, 1)])
def test_pamr_step_equals_torch(C, H, W):
    P = 3
    x, aff = _padded(C, H, W, P, seed=C * W)
    out = torch.full_like(x, float('nan'))
    assert step(x, aff, *map(list, zip(*OFFSETS)), out=out) is out
    assert torch.allclose(out, _torch_step(x, aff, OFFSETS, P), atol=1e-5, rtol=0)


def test_pamr_step_does_not_depend_on_the_threads():
    x, aff = _padded(6, 40, 37, 3, seed=0)
    dy, dx = map(list, zip(*OFFSETS))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = step(x, aff, dy, dx, out=torch.empty_like(x))
        torch.set_num_threads(2)
        two = step(x, aff, dy, dx, out=torch.empty_like(x))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_pamr_step_names_what_it_refuses():
    x, aff = _padded(2, 6, 7, 3, seed=1)
    dy, dx = map(list, zip(*OFFSETS))
    with pytest.raises(RuntimeError, match='float32'):
        step(x.double(), aff, dy, dx, out=torch.empty_like(x))
    with pytest.raises(RuntimeError, match='one \\(dy, dx\\) offset per affinity'):
        step(x, aff, dy[:-1], dx[:-1], out=torch.empty_like(x))
    with pytest.raises(RuntimeError, match='maps of \\(H \\+ 2P, W \\+ 2P\\)'):
        step(x[:, :-1], aff, dy, dx, out=torch.empty_like(x[:, :-1]))
    with pytest.raises(RuntimeError, match='beyond the maps\' border'):  # read nothing outside the maps
        step(x, aff, [4] + dy[1:], dx, out=torch.empty_like(x))
    with pytest.raises(RuntimeError, match='out must be a contiguous'):
        step(x, aff, dy, dx, out=torch.empty(x.shape[::-1]).permute(2, 1, 0))
    with pytest.raises(RuntimeError, match='out must be a contiguous'):
        step(x, aff, dy, dx, out=torch.empty(3, *x.shape[1:]))
    with pytest.raises(RuntimeError, match='single memory location'):  # maps read would be overwritten while the step runs
        step(x, aff, dy, dx, out=x)


@pytest.mark.parametrize('hw', [(3, 5), (7, 21), (12, 45)])  # widths: a remainder only, 16 + remainder, 32 + ...
def test_pamr_affinity_logits_equal_the_shifted_views(hw):
    """PAMR's affinities from the kernel (float32) and from the reference's shifted views (float64, the torch path)."""
    from ovdense.models.utils.pamr import PAMR
    pamr = PAMR(10, (1, 3))
    image = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(hw[1]))
    ours, ref = pamr.affinity(image), pamr.affinity(image.double())
    assert ours.dtype == torch.float32 and torch.allclose(ours.double(), ref, atol=1e-6, rtol=0)


def test_pamr_affinity_logits_names_what_it_refuses():
    logits = torch.ops.ovdense.pamr_affinity_logits
    with pytest.raises(RuntimeError, match='float32 CPU guide image'):
        logits(torch.rand(3, 9, 9).double(), [0, 1], [0, 1], [1], [1])
    with pytest.raises(RuntimeError, match='must be padded by 3'):
        logits(torch.rand(3, 6, 9), [0, 3], [0, 3], [1], [1])


# widths: a remainder only (< 16), one vector, vectors + remainder, a ViT-B/16 MLP's 3072
@pytest.mark.parametrize('shape', [(3, 7), (5, 16), (2, 3, 53), (37, 3072)])
def test_bias_quick_gelu_equals_torch_to_a_few_ulp(shape):
    g = torch.Generator().manual_seed(shape[-1])
    h = torch.randn(shape, generator=g) * 4
    h.view(-1)[:6] = torch.tensor([-100.0, -60.0, -0.0, 1e-30, 60.0, 100.0])  # the exponential's clamps, zeros
    bias = torch.randn(shape[-1], generator=g)
    z = h + bias
    ref = z * torch.sigmoid(1.702 * z)  # open_clip's QuickGELU after the linear layer's bias, in float32
    out = h.clone()
    assert torch.ops.ovdense.bias_quick_gelu_(out, bias) is out
    ulp = torch.nextafter(ref.abs(), torch.tensor(float('inf'))) - ref.abs()
    # 4 ulp at most here (both are ~30 ulp from the exact value where z << 0: 1.702 z is rounded first); below 1e-30
    # where torch's sigmoid underflows to 0 and the clamped exponential does not
    assert ((out - ref).abs() <= 8 * ulp + 1e-30).all(), ((out - ref).abs() / ulp).max()
    assert torch.isfinite(out).all()


def test_bias_quick_gelu_does_not_depend_on_the_threads():
    h, bias = torch.randn(64, 304), torch.randn(304)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.ops.ovdense.bias_quick_gelu_(h.clone(), bias)
        torch.set_num_threads(2)
        assert torch.equal(torch.ops.ovdense.bias_quick_gelu_(h.clone(), bias), one)
    finally:
        torch.set_num_threads(before)


def test_bias_quick_gelu_names_what_it_refuses():
    act = torch.ops.ovdense.bias_quick_gelu_
    with pytest.raises(RuntimeError, match='float32 CPU tensors'):
        act(torch.randn(2, 4).double(), torch.randn(4).double())
    with pytest.raises(RuntimeError, match=r'\(N,\) bias'):
        act(torch.randn(2, 4), torch.randn(5))
    with pytest.raises(RuntimeError, match='contiguous'):
        act(torch.randn(4, 2).t(), torch.randn(4))
