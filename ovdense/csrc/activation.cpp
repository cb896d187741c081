// The bias and activation after a CLIP MLP's first linear layer, in place, in one pass (ovdense/clip/towers.py):
// h[m, n] <- act(h[m, n] + bias[n]) for QuickGELU (z * sigmoid(1.702 z): OpenAI's towers) and the exact GELU
// (z / 2 * (1 + erf(z / sqrt 2)): OpenCLIP's, MetaCLIP's). torch runs it as addmm's bias copy, the product accumulated
// onto it, then one to three passes over the MLP's widest tensor; here the product runs without bias and this is
// one read and one write. The exponential is Cephes' expf on 16-float vectors (range reduction by ln 2, a degree-5
// polynomial, 2^n through the exponent bits; within 2 ulp); erf is Abramowitz & Stegun 7.1.26, the formula of ATen's
// own vectorised erf (|error| <= 1.5e-7). The results are torch's up to a few ulp, not bit for bit.
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

// erf by Abramowitz & Stegun 7.1.26: 1 - t p(t) e^(-x^2) with t = 1 / (1 + 0.3275911 |x|), odd
OV_INLINE v16 verf(v16 x) {
  const v16 a = x < 0.0f ? -x : x;
  const v16 t = 1.0f / (a * 0.3275911f + 1.0f);
  v16 r = splat(1.061405429f);
  r = r * t - 1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t - 0.284496736f;
  r = r * t + 0.254829592f;
  const v16 y = 1.0f - r * t * vexp(-(a * a));
  return x < 0.0f ? -y : y;
}

struct QuickGelu {
  static OV_INLINE v16 apply(v16 z) { return z / (1.0f + vexp(z * -1.702f)); }
  static float apply(float z) { return z / (1.0f + std::exp(z * -1.702f)); }
};

struct Gelu {
  static OV_INLINE v16 apply(v16 z) { return z * 0.5f * (1.0f + verf(z * 0.70710678118654752f)); }
  static float apply(float z) { return z * 0.5f * (1.0f + std::erf(z * 0.70710678118654752f)); }
};

template <typename Act>
OV_CLONES void bias_act_rows(float* h, const float* b, int64_t N, int64_t m0, int64_t m1) {
  for (int64_t m = m0; m < m1; ++m) {
    float* r = h + m * N;
    int64_t n = 0;
    for (; n + 16 <= N; n += 16) store(r + n, Act::apply(load<v16>(r + n) + load<v16>(b + n)));
    for (; n < N; ++n) r[n] = Act::apply(r[n] + b[n]);  // the last < 16 columns
  }
}

template <typename Act>
torch::Tensor& bias_act_(torch::Tensor& h, const torch::Tensor& bias, const char* name) {
  TORCH_CHECK(h.device().is_cpu() && bias.device().is_cpu() && h.scalar_type() == torch::kFloat &&
                  bias.scalar_type() == torch::kFloat,
              name, ": float32 CPU tensors, got ", h.scalar_type(), " and ", bias.scalar_type());
  TORCH_CHECK(h.is_contiguous() && h.dim() >= 1 && bias.dim() == 1 && bias.size(0) == h.size(-1), name,
              ": a contiguous (..., N) tensor and an (N,) bias, got ", h.sizes(), " and ", bias.sizes());
  const int64_t N = h.size(-1), M = N ? h.numel() / N : 0;
  const auto bc = bias.contiguous();
  float* hp = h.data_ptr<float>();
  const float* bp = bc.data_ptr<float>();
  at::parallel_for(0, M, 16, [&](int64_t a, int64_t b) { bias_act_rows<Act>(hp, bp, N, a, b); });
  return h;
}

torch::Tensor& bias_quick_gelu_(torch::Tensor& h, const torch::Tensor& bias) {
  return bias_act_<QuickGelu>(h, bias, "bias_quick_gelu_");
}

torch::Tensor& bias_gelu_(torch::Tensor& h, const torch::Tensor& bias) {
  return bias_act_<Gelu>(h, bias, "bias_gelu_");
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ovdense, m) {
  m.def("bias_quick_gelu_(Tensor(a!) h, Tensor bias) -> Tensor(a!)");
  m.def("bias_gelu_(Tensor(a!) h, Tensor bias) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(ovdense, CPU, m) {
  m.impl("bias_quick_gelu_", &bias_quick_gelu_);
  m.impl("bias_gelu_", &bias_gelu_);
}
