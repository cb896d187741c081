// A sparse (CSR) times dense product for the CPU, for PAMR's refinement (ovdense/models/utils/pamr.py).
//
// out[r, :] = sum_j val[j] * x[col[j], :] over the row's entries j in [crow[r], crow[r + 1]).
// torch's CSR product (MKL) runs PAMR's matrices (16 entries a row, 10-60 dense columns) at ~13 GFLOP/s on a 2-core
// AVX2 machine; this one keeps a row's output (up to 32 columns) in vector registers while it adds the 16
// neighbours' rows, and runs at ~30 GFLOP/s there. The entries of a row are added in their stored order, as in a
// scalar loop, so the result does not depend on the number of threads. GCC compiles it for AVX-512 (x86-64-v4),
// AVX2 (x86-64-v3) and baseline x86-64, the loader picks the CPU's: the AVX-512 clone is 1.1x the AVX2 one on a
// Xeon that has both (its 32 vector registers; the vectors stay 8 wide).
#include <torch/extension.h>

#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>

namespace {

typedef float v8 __attribute__((vector_size(32)));  // GCC/Clang vectors: AVX on x86-64-v3, two SSE/NEON otherwise

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OV_CLONES
#endif

#define OV_INLINE __attribute__((always_inline)) inline  // compiled into each clone of rows_mm, for its target

// f(a, k) for each stored entry (value a, column k) of row r; an entry out of range (a row pointer outside [0, nnz],
// a column outside [0, N)) is skipped and flagged in bad
template <typename I, typename F>
OV_INLINE void for_entries(const I* crow, const I* col, const float* val, int64_t r, int64_t N, int64_t nnz,
                           bool& bad, F&& f) {
  const int64_t j0 = crow[r], j1 = crow[r + 1];
  bad |= j0 < 0 || j1 > nnz;
  for (int64_t j = j0 < 0 ? 0 : j0; j < (j1 > nnz ? nnz : j1); ++j) {
    const int64_t k = col[j];
    if (k < 0 || k >= N) {
      bad = true;
      continue;
    }
    f(val[j], k);
  }
}

// out[r, c0:c0 + 8 NB] for rows [r0, r1): NB vectors of 8 columns, held in registers across the row's entries
template <int NB, typename I>
OV_INLINE void block_mm(const I* crow, const I* col, const float* val, const float* x, float* out, int64_t r0,
                        int64_t r1, int64_t C, int64_t c0, int64_t N, int64_t nnz, bool& bad) {
  for (int64_t r = r0; r < r1; ++r) {
    v8 acc[NB] = {};
    for_entries(crow, col, val, r, N, nnz, bad, [&](float a, int64_t k) {
      const v8 av = {a, a, a, a, a, a, a, a};
      const float* xs = x + k * C + c0;
      for (int q = 0; q < NB; ++q) {
        v8 v;
        std::memcpy(&v, xs + 8 * q, sizeof(v));
        acc[q] += av * v;
      }
    });
    std::memcpy(out + r * C + c0, acc, sizeof(acc));
  }
}

// rows [r0, r1) of the product; returns whether an entry was out of range
template <typename I>
OV_CLONES bool rows_mm(const I* crow, const I* col, const float* val, const float* x, float* out, int64_t r0,
                       int64_t r1, int64_t C, int64_t N, int64_t nnz) {
  bool bad = false;
  int64_t c0 = 0;
  for (; c0 + 32 <= C; c0 += 32) block_mm<4>(crow, col, val, x, out, r0, r1, C, c0, N, nnz, bad);
  switch ((C - c0) / 8) {  // the last < 32 columns: whole vectors, then single columns
    case 3: block_mm<3>(crow, col, val, x, out, r0, r1, C, c0, N, nnz, bad); c0 += 24; break;
    case 2: block_mm<2>(crow, col, val, x, out, r0, r1, C, c0, N, nnz, bad); c0 += 16; break;
    case 1: block_mm<1>(crow, col, val, x, out, r0, r1, C, c0, N, nnz, bad); c0 += 8; break;
    default: break;
  }
  if (c0 < C) {  // the last < 8 columns, in one pass over the row's entries too
    const int64_t n = C - c0;
    for (int64_t r = r0; r < r1; ++r) {
      float acc[8] = {};
      for_entries(crow, col, val, r, N, nnz, bad, [&](float a, int64_t k) {
        for (int64_t c = 0; c < n; ++c) acc[c] += a * x[k * C + c0 + c];
      });
      std::memcpy(out + r * C + c0, acc, n * sizeof(float));
    }
  }
  return bad;
}

torch::Tensor& csr_mm_out(const torch::Tensor& crow, const torch::Tensor& col, const torch::Tensor& val,
                          const torch::Tensor& x, torch::Tensor& out) {
  TORCH_CHECK(x.device().is_cpu() && val.device().is_cpu(), "csr_mm: CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && val.scalar_type() == torch::kFloat,
              "csr_mm: float32 values and a 2-d float32 dense matrix, got ", val.scalar_type(), " and ", x.sizes());
  TORCH_CHECK(crow.scalar_type() == col.scalar_type() &&
                  (col.scalar_type() == torch::kInt || col.scalar_type() == torch::kLong),
              "csr_mm: int32 or int64 indices, the same for rows and columns");
  TORCH_CHECK(crow.dim() == 1 && col.dim() == 1 && val.dim() == 1 && col.numel() == val.numel(),
              "csr_mm: 1-d row pointers, columns and values");
  const int64_t R = crow.numel() - 1, C = x.size(1), N = x.size(0), nnz = col.numel();
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat && out.is_contiguous() &&
                  out.dim() == 2 && out.size(0) == R && out.size(1) == C,
              "csr_mm: out must be a contiguous float32 CPU tensor of [", R, ", ", C, "], got ", out.sizes());
  const auto xc = x.contiguous();
  at::assert_no_overlap(out, xc);  // the rows read would be overwritten while the product runs
  const auto cr = crow.contiguous(), cl = col.contiguous(), vl = val.contiguous();
  const float* xp = xc.data_ptr<float>();
  const float* vp = vl.data_ptr<float>();
  float* op = out.data_ptr<float>();
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(cl.scalar_type(), "csr_mm", [&] {
    const index_t* rp = cr.data_ptr<index_t>();
    const index_t* cp = cl.data_ptr<index_t>();
    at::parallel_for(0, R, 256, [&](int64_t a, int64_t b) {
      if (rows_mm<index_t>(rp, cp, vp, xp, op, a, b, C, N, nnz)) bad.store(true, std::memory_order_relaxed);
    });
  });
  TORCH_CHECK(!bad.load(), "csr_mm: a row pointer outside [0, ", nnz, "] or a column index outside [0, ", N,
              "): not a CSR matrix of ", N, " columns");
  return out;
}

torch::Tensor csr_mm(const torch::Tensor& crow, const torch::Tensor& col, const torch::Tensor& val,
                     const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "csr_mm: a 2-d float32 dense matrix, got ", x.sizes());
  auto out = torch::empty({crow.numel() - 1, x.size(1)}, x.options());
  return csr_mm_out(crow, col, val, x, out);
}

}  // namespace

// torch.ops.ovdense.csr_mm, registered when ovdense._ext is imported: an operator of torch's dispatcher, so that
// dispatch modes (torch's FlopCounterMode in ovdense.profiling) see it
// (csr_mm.out writes into a given matrix: PAMR's iterations alternate two buffers instead of allocating one each)
TORCH_LIBRARY(ovdense, m) {
  m.def("csr_mm(Tensor crow, Tensor col, Tensor val, Tensor x) -> Tensor");
  m.def("csr_mm.out(Tensor crow, Tensor col, Tensor val, Tensor x, *, Tensor(a!) out) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(ovdense, CPU, m) {
  m.impl("csr_mm", &csr_mm);
  m.impl("csr_mm.out", &csr_mm_out);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}
