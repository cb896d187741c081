// What ovdense's CPU kernels share: GCC vector types (8 and 16 floats; one AVX-512 register or two AVX2 ones for
// 16), unaligned loads and stores, and the function clones for x86-64-v4 (AVX-512), v3 (AVX2) and the baseline.
#pragma once

#include <cstdint>
#include <cstring>

namespace ovdense_simd {

typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OV_CLONES
#endif
#define OV_INLINE __attribute__((always_inline)) inline

template <typename V = v8>
OV_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
OV_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace ovdense_simd
