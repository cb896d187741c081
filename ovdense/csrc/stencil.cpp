// PAMR on the CPU (ovdense/models/utils/pamr.py): one refinement iteration as a stencil on channel-major maps
// (pamr_step) and the affinities of a guide image (pamr_affinity_logits).
//
// pamr_step: out[c, P + y, P + x] = sum_k aff[k, y, x] * in[c, P + y + dy[k], P + x + dx[k]] for the H x W pixels of
// each map, then out's border of P pixels replicates its edge (the next iteration reads it as the reference's
// replicate padding). ``in`` and ``out`` are (C, H + 2P, W + 2P); the affinities are (K, H, W). Every load is a
// contiguous vector along x (16 floats: one AVX-512 register in the x86-64-v4 clone, two AVX2 ones in the v3
// clone), a row of affinities serves 4 maps at once, and 8 maps go row after row so that the rows the next rows read
// (2 x 16 above and below) are still in L2 (a pixel-major sparse product gathers a neighbour's row of all maps per
// entry instead: 2x slower here). The K terms are added in the given order: the result does not depend on the
// number of threads.
#include <torch/extension.h>

#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "simd.h"

namespace {

using namespace ovdense_simd;

struct Plan {
  int64_t K, H, W, Hp, Wp, P;
  const int64_t* shift;  // per k: dy[k] * Wp + dx[k]
};

// pixels [x0, x0 + NV vectors) of row y of maps c0..c0 + NC: NC x NV vectors of accumulators
template <int NC, int NV, typename V = v8>
OV_INLINE void block(const Plan& p, const float* in, float* out, const float* aff, int64_t y, int64_t c0,
                     int64_t x0) {
  const int64_t plane = p.Hp * p.Wp, centre = (p.P + y) * p.Wp + p.P + x0;
  V acc[NC][NV] = {};
  constexpr int L = sizeof(V) / sizeof(float);
  for (int64_t k = 0; k < p.K; ++k) {
    const float* a = aff + (k * p.H + y) * p.W + x0;
    V w[NV];
    for (int v = 0; v < NV; ++v) w[v] = load<V>(a + L * v);
    const float* src = in + c0 * plane + centre + p.shift[k];
    for (int c = 0; c < NC; ++c)
      for (int v = 0; v < NV; ++v) acc[c][v] += w[v] * load<V>(src + c * plane + L * v);
  }
  for (int c = 0; c < NC; ++c) std::memcpy(out + (c0 + c) * plane + centre, acc[c], sizeof(acc[c]));
}

// pixels [x0, x1) of row y of maps c0..c0 + NC
template <int NC>
OV_INLINE void segment(const Plan& p, const float* in, float* out, const float* aff, int64_t y, int64_t c0,
                       int64_t x0, int64_t x1) {
  int64_t x = x0;
  for (; x + 32 <= x1; x += 32) block<NC, 2, v16>(p, in, out, aff, y, c0, x);
  for (; x + 16 <= x1; x += 16) block<NC, 1, v16>(p, in, out, aff, y, c0, x);
  for (; x + 8 <= x1; x += 8) block<NC, 1>(p, in, out, aff, y, c0, x);
  const int64_t plane = p.Hp * p.Wp, centre = (p.P + y) * p.Wp + p.P;
  for (; x < x1; ++x) {  // the last < 8 pixels
    for (int c = 0; c < NC; ++c) {
      float acc = 0.f;
      for (int64_t k = 0; k < p.K; ++k)
        acc += aff[(k * p.H + y) * p.W + x] * in[(c0 + c) * plane + centre + x + p.shift[k]];
      out[(c0 + c) * plane + centre + x] = acc;
    }
  }
}

constexpr int64_t kGroup = 8;  // maps done row after row before the next ones: 2 x 16 rows of each stay in L2

// rows [y0, y1) of every map, kGroup maps at a time, then the rows' left and right borders
OV_CLONES void rows(const Plan& p, const float* in, float* out, const float* aff, int64_t C, int64_t y0,
                    int64_t y1) {
  for (int64_t g = 0; g < C; g += kGroup) {
    const int64_t g1 = g + kGroup < C ? g + kGroup : C;
    for (int64_t y = y0; y < y1; ++y) {
      int64_t c = g;
      for (; c + 4 <= g1; c += 4) segment<4>(p, in, out, aff, y, c, 0, p.W);
      for (; c < g1; ++c) segment<1>(p, in, out, aff, y, c, 0, p.W);
    }
  }
  const int64_t plane = p.Hp * p.Wp;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t y = y0; y < y1; ++y) {  // replicate each row's edge pixels into its border
      float* r = out + c * plane + (p.P + y) * p.Wp;
      for (int64_t i = 0; i < p.P; ++i) {
        r[i] = r[p.P];
        r[p.P + p.W + i] = r[p.P + p.W - 1];
      }
    }
  }
}

torch::Tensor& pamr_step_out(const torch::Tensor& x, const torch::Tensor& aff, at::IntArrayRef dy,
                             at::IntArrayRef dx, torch::Tensor& out) {
  TORCH_CHECK(x.device().is_cpu() && aff.device().is_cpu() && out.device().is_cpu(), "pamr_step: CPU tensors only");
  TORCH_CHECK(x.scalar_type() == torch::kFloat && aff.scalar_type() == torch::kFloat &&
                  out.scalar_type() == torch::kFloat && x.dim() == 3 && aff.dim() == 3,
              "pamr_step: float32 maps (C, H + 2P, W + 2P) and affinities (K, H, W), got ", x.sizes(), " and ",
              aff.sizes());
  const int64_t K = aff.size(0), H = aff.size(1), W = aff.size(2), C = x.size(0);
  TORCH_CHECK(K > 0 && static_cast<int64_t>(dy.size()) == K && static_cast<int64_t>(dx.size()) == K,
              "pamr_step: one (dy, dx) offset per affinity, got ", dy.size(), " and ", dx.size(), " for ", K);
  const int64_t P = (x.size(1) - H) / 2;
  TORCH_CHECK(P >= 0 && x.size(1) == H + 2 * P && x.size(2) == W + 2 * P,
              "pamr_step: maps of (H + 2P, W + 2P) for affinities of ", H, " x ", W, ", got ", x.sizes());
  for (int64_t k = 0; k < K; ++k)
    TORCH_CHECK(std::abs(dy[k]) <= P && std::abs(dx[k]) <= P, "pamr_step: offset (", dy[k], ", ", dx[k],
                ") reaches beyond the maps' border of ", P);
  TORCH_CHECK(out.is_contiguous() && out.sizes() == x.sizes(),
              "pamr_step: out must be a contiguous float32 CPU tensor of ", x.sizes(), ", got ", out.sizes());
  const auto xc = x.contiguous(), ac = aff.contiguous();
  at::assert_no_overlap(out, xc);  // maps read would be overwritten while the step runs
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
  std::vector<int64_t> shift(K);
  for (int64_t k = 0; k < K; ++k) shift[k] = dy[k] * Wp + dx[k];
  const Plan plan{K, H, W, Hp, Wp, P, shift.data()};
  const float* ip = xc.data_ptr<float>();
  const float* ap = ac.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, H, 8, [&](int64_t a, int64_t b) { rows(plan, ip, op, ap, C, a, b); });
  at::parallel_for(0, C, 1, [&](int64_t a, int64_t b) {  // the top and bottom borders replicate the edge rows
    for (int64_t c = a; c < b; ++c) {
      float* m = op + c * Hp * Wp;
      for (int64_t i = 0; i < P; ++i) {
        std::memcpy(m + i * Wp, m + P * Wp, Wp * sizeof(float));
        std::memcpy(m + (P + H + i) * Wp, m + (P + H - 1) * Wp, Wp * sizeof(float));
      }
    }
  });
  return out;
}

// The affinity logits of PAMR on a replicate-padded guide image: for each pixel and channel, the mean and the
// unbiased standard deviation of the n = 9 x len(dilations) samples of its neighbourhoods (the centre once per
// dilation), then for each of the K neighbours -mean over channels of |I - I_k| / (1e-8 + 0.1 std). Rows of pixels
// at a time, every loop along x (contiguous, vectorised by the compiler).
OV_CLONES void affinity_rows(const float* img, float* out, int64_t Ch, int64_t H, int64_t W, int64_t P,
                             const int64_t* stat, int64_t n, const int64_t* nb, int64_t K, int64_t y0, int64_t y1) {
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
  std::vector<float> mean(W), var(W), denom(Ch * W), acc(W);
  for (int64_t y = y0; y < y1; ++y) {
    for (int64_t c = 0; c < Ch; ++c) {
      const float* centre = img + (c * Hp + P + y) * Wp + P;
      std::fill(mean.begin(), mean.end(), 0.f);
      for (int64_t i = 0; i < n; ++i) {
        const float* v = centre + stat[i];
        for (int64_t x = 0; x < W; ++x) mean[x] += v[x];
      }
      for (int64_t x = 0; x < W; ++x) mean[x] /= static_cast<float>(n);
      std::fill(var.begin(), var.end(), 0.f);
      for (int64_t i = 0; i < n; ++i) {
        const float* v = centre + stat[i];
        for (int64_t x = 0; x < W; ++x) var[x] += (v[x] - mean[x]) * (v[x] - mean[x]);
      }
      float* d = denom.data() + c * W;
      for (int64_t x = 0; x < W; ++x) d[x] = std::sqrt(var[x] / static_cast<float>(n - 1)) * 0.1f + 1e-8f;
    }
    for (int64_t k = 0; k < K; ++k) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t c = 0; c < Ch; ++c) {
        const float* centre = img + (c * Hp + P + y) * Wp + P;
        const float* v = centre + nb[k];
        const float* d = denom.data() + c * W;
        for (int64_t x = 0; x < W; ++x) acc[x] += std::fabs(centre[x] - v[x]) / d[x];
      }
      float* o = out + (k * H + y) * W;
      for (int64_t x = 0; x < W; ++x) o[x] = -(acc[x] / static_cast<float>(Ch));
    }
  }
}

torch::Tensor pamr_affinity_logits(const torch::Tensor& image, at::IntArrayRef sdy, at::IntArrayRef sdx,
                                   at::IntArrayRef dy, at::IntArrayRef dx) {
  TORCH_CHECK(image.device().is_cpu() && image.scalar_type() == torch::kFloat && image.dim() == 3,
              "pamr_affinity_logits: a float32 CPU guide image (channels, H + 2P, W + 2P), got ", image.sizes());
  TORCH_CHECK(sdy.size() == sdx.size() && sdy.size() >= 2 && dy.size() == dx.size() && !dy.empty(),
              "pamr_affinity_logits: (dy, dx) pairs, at least 2 for the statistics and 1 neighbour");
  const int64_t Ch = image.size(0), Hp = image.size(1), Wp = image.size(2);
  int64_t P = 0;
  for (auto v : {sdy, sdx, dy, dx})
    for (auto o : v) P = std::max<int64_t>(P, std::abs(o));
  TORCH_CHECK(Hp > 2 * P && Wp > 2 * P, "pamr_affinity_logits: the image must be padded by ", P, ", got ",
              image.sizes());
  const int64_t H = Hp - 2 * P, W = Wp - 2 * P, n = sdy.size(), K = dy.size();
  std::vector<int64_t> stat(n), nb(K);
  for (int64_t i = 0; i < n; ++i) stat[i] = sdy[i] * Wp + sdx[i];
  for (int64_t k = 0; k < K; ++k) nb[k] = dy[k] * Wp + dx[k];
  const auto ic = image.contiguous();
  auto out = torch::empty({K, H, W}, ic.options());
  const float* ip = ic.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, H, 8, [&](int64_t a, int64_t b) {
    affinity_rows(ip, op, Ch, H, W, P, stat.data(), n, nb.data(), K, a, b);
  });
  return out;
}

}  // namespace

// torch.ops.ovdense.pamr_step.out, registered when ovdense._ext is imported: an operator of torch's dispatcher, so
// that dispatch modes (torch's FlopCounterMode in ovdense.profiling) see it
TORCH_LIBRARY(ovdense, m) {
  m.def("pamr_step.out(Tensor x, Tensor aff, int[] dy, int[] dx, *, Tensor(a!) out) -> Tensor(a!)");
  m.def("pamr_affinity_logits(Tensor image, int[] sdy, int[] sdx, int[] dy, int[] dx) -> Tensor");
}

TORCH_LIBRARY_IMPL(ovdense, CPU, m) {
  m.impl("pamr_step.out", &pamr_step_out);
  m.impl("pamr_affinity_logits", &pamr_affinity_logits);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}
