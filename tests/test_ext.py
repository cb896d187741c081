"""ovdense._ext (ovdense/csrc/sparse.cpp): torch.ops.ovdense.csr_mm, the CPU sparse product PAMR runs on, against
torch's."""
import pytest
import torch

from ovdense import _ext  # noqa: F401  (registers torch.ops.ovdense.csr_mm)

csr_mm = torch.ops.ovdense.csr_mm


def _random_csr(rows: int, cols: int, *, index: torch.dtype, seed: int) -> torch.Tensor:
    """Rows of 0 to 20 entries (an empty row included), columns sorted and distinct."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, min(cols, 20) + 1, (rows,), generator=g)
    counts[rows // 2] = 0
    crow = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    col = torch.cat([torch.randperm(cols, generator=g)[:int(n)].sort().values for n in counts])
    val = torch.randn(int(crow[-1]), generator=g)
    return torch.sparse_csr_tensor(crow.to(index), col.to(index), val, (rows, cols))


@pytest.mark.parametrize('index', [torch.int32, torch.int64])
@pytest.mark.parametrize('width', [1, 3, 8, 13, 24, 32, 37, 70])  # whole vectors, a remainder, several blocks of 32
def test_csr_mm_equals_torch(index, width):
    a = _random_csr(300, 257, index=index, seed=width)
    x = torch.randn(257, width, generator=torch.Generator().manual_seed(1))
    ours = csr_mm(a.crow_indices(), a.col_indices(), a.values(), x)
    assert ours.shape == (300, width)
    assert torch.allclose(ours, a.to_dense() @ x, atol=1e-5, rtol=1e-5)
    assert torch.equal(ours[150], torch.zeros(width))  # the empty row


def test_csr_mm_reads_a_strided_dense_matrix():
    a = _random_csr(40, 30, index=torch.int32, seed=0)
    x = torch.randn(17, 30).t()  # (30, 17), not contiguous
    ours = csr_mm(a.crow_indices(), a.col_indices(), a.values(), x)
    assert torch.allclose(ours, a.to_dense() @ x, atol=1e-5, rtol=1e-5)


def test_csr_mm_names_what_it_refuses():
    a = _random_csr(10, 10, index=torch.int32, seed=0)
    with pytest.raises(RuntimeError, match='float32'):
        csr_mm(a.crow_indices(), a.col_indices(), a.values(), torch.randn(10, 4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match='indices'):
        csr_mm(a.crow_indices().long(), a.col_indices(), a.values(), torch.randn(10, 4))
    with pytest.raises(RuntimeError, match='column index outside'):  # read nothing outside the dense matrix
        csr_mm(a.crow_indices(), a.col_indices(), a.values(), torch.randn(5, 4))
    bad_rows = a.crow_indices().clone()
    bad_rows[-1] += 1
    with pytest.raises(RuntimeError, match='row pointer outside'):
        csr_mm(bad_rows, a.col_indices(), a.values(), torch.randn(10, 4))


def test_csr_mm_out_writes_into_the_given_matrix():
    a = _random_csr(300, 300, index=torch.int32, seed=3)
    x = torch.randn(300, 24, generator=torch.Generator().manual_seed(4))
    out = torch.full((300, 24), float('nan'))
    args = a.crow_indices(), a.col_indices(), a.values()
    assert csr_mm.out(*args, x, out=out) is out
    assert torch.equal(out, csr_mm(*args, x))
    with pytest.raises(RuntimeError, match='out must be a contiguous float32 CPU tensor of \\[300, 24\\]'):
        csr_mm.out(*args, x, out=torch.empty(24, 300).t())
    with pytest.raises(RuntimeError, match='out must be'):
        csr_mm.out(*args, x, out=torch.empty(300, 23))
    with pytest.raises(RuntimeError, match='refer to a single memory location'):  # its own input: rows read after they were overwritten
        csr_mm.out(*args, x, out=x)
