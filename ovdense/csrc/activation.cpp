// The bias and QuickGELU after a CLIP MLP's first linear layer, in place, in one pass (ovdense/clip/towers.py):
// h[m, n] <- z * sigmoid(1.702 z) with z = h[m, n] + bias[n]. torch runs it as addmm's bias copy, the product
// accumulated onto it, then three passes (1.702 h, sigmoid, the product) over the MLP's widest tensor; here the
// product runs without bias and this is one read and one write. The exponential is Cephes' expf on 16-float vectors
// (range reduction by ln 2, a degree-5 polynomial, 2^n through the exponent bits; within 2 ulp), so the result is
// torch's up to a few ulp, not bit for bit.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace {

using namespace ovdense_simd;

OV_INLINE v16 splat(float v) { return v16{} + v; }

// e^x (Cephes expf): x = n ln2 + r with |r| <= ln2 / 2, e^r = 1 + r + r^2 p(r), times 2^n
OV_INLINE v16 vexp(v16 x) {
  x = x < splat(88.3762626647949f) ? x : splat(88.3762626647949f);
  x = x > splat(-88.3762626647949f) ? x : splat(-88.3762626647949f);
  v16 fx = x * 1.44269504088896341f + 0.5f;
  v16 n = __builtin_convertvector(__builtin_convertvector(fx, vi16), v16);  // truncation, then floor
  n = n > fx ? n - 1.0f : n;
  x = x - n * 0.693359375f + n * 2.12194440e-4f;
  v16 y = splat(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * (x * x) + x + 1.0f;
  vi16 e = (__builtin_convertvector(n, vi16) + 127) << 23;
  v16 p;
  std::memcpy(&p, &e, sizeof(p));
  return y * p;
}

OV_CLONES void bias_quick_gelu_rows(float* h, const float* b, int64_t N, int64_t m0, int64_t m1) {
  for (int64_t m = m0; m < m1; ++m) {
    float* r = h + m * N;
    int64_t n = 0;
    for (; n + 16 <= N; n += 16) {
      const v16 z = load<v16>(r + n) + load<v16>(b + n);
      store(r + n, z / (1.0f + vexp(z * -1.702f)));
    }
    for (; n < N; ++n) {  // the last < 16 columns
      const float z = r[n] + b[n];
      r[n] = z / (1.0f + std::exp(z * -1.702f));
    }
  }
}

torch::Tensor& bias_quick_gelu_(torch::Tensor& h, const torch::Tensor& bias) {
  TORCH_CHECK(h.device().is_cpu() && bias.device().is_cpu() && h.scalar_type() == torch::kFloat &&
                  bias.scalar_type() == torch::kFloat,
              "bias_quick_gelu_: float32 CPU tensors, got ", h.scalar_type(), " and ", bias.scalar_type());
  TORCH_CHECK(h.is_contiguous() && h.dim() >= 1 && bias.dim() == 1 && bias.size(0) == h.size(-1),
              "bias_quick_gelu_: a contiguous (..., N) tensor and an (N,) bias, got ", h.sizes(), " and ",
              bias.sizes());
  const int64_t N = h.size(-1), M = N ? h.numel() / N : 0;
  const auto bc = bias.contiguous();
  float* hp = h.data_ptr<float>();
  const float* bp = bc.data_ptr<float>();
  at::parallel_for(0, M, 16, [&](int64_t a, int64_t b) { bias_quick_gelu_rows(hp, bp, N, a, b); });
  return h;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ovdense, m) { m.def("bias_quick_gelu_(Tensor(a!) h, Tensor bias) -> Tensor(a!)"); }

TORCH_LIBRARY_IMPL(ovdense, CPU, m) { m.impl("bias_quick_gelu_", &bias_quick_gelu_); }
