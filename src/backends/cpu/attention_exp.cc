// exp2 over arrays and the row softmax of the materialized attention side, per ISA level. The
// flash side inlines the same exp2 (attention_exp-inl.h) into its softmax step.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "backends/cpu/attention_exp-inl.h"
#include "backends/cpu/attention_internal.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// reports once inlined (GCC bug 105593, fixed in 13); the value is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- scalar ----------------------------------------------------------------------------------

void exp2_array_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp2_scalar(x[i]);
}

void softmax_row_scalar(float* s, int64_t n_visible) {
  float max = kNegInf;
  for (int64_t i = 0; i < n_visible; ++i) max = std::max(max, s[i]);
  float sum = 0;
  for (int64_t i = 0; i < n_visible; ++i) sum += s[i] = exp2_scalar(s[i] - max);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n_visible; ++i) s[i] *= inv;
}

// ---- AVX2 ------------------------------------------------------------------------------------

// Lanes [0, n) of a 256-bit mask, n < 8.
BF_TARGET_AVX2 __m256i tail_mask_avx2(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

BF_TARGET_AVX2 float hmax_avx2(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

BF_TARGET_AVX2 float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

BF_TARGET_AVX2 void exp2_array_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp2_avx2(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = tail_mask_avx2(n - i);
    _mm256_maskstore_ps(y + i, mask, exp2_avx2(_mm256_maskload_ps(x + i, mask)));
  }
}

BF_TARGET_AVX2 void softmax_row_avx2(float* s, int64_t n) {
  const int64_t n_full = n & ~int64_t{7};
  const __m256i tail = tail_mask_avx2(n - n_full);
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (int64_t i = 0; i < n_full; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + i));
  if (n_full < n)
    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(kNegInf), _mm256_maskload_ps(s + n_full, tail),
                                                _mm256_castsi256_ps(tail)));
  const __m256 max = _mm256_set1_ps(hmax_avx2(vmax));
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t i = 0; i < n_full; i += 8) {
    const __m256 p = exp2_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + i), max));
    _mm256_storeu_ps(s + i, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  if (n_full < n) {
    const __m256 p =
        _mm256_and_ps(exp2_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + n_full, tail), max)), _mm256_castsi256_ps(tail));
    _mm256_maskstore_ps(s + n_full, tail, p);
    vsum = _mm256_add_ps(vsum, p);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum_avx2(vsum));
  for (int64_t i = 0; i < n_full; i += 8) _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), inv));
  if (n_full < n) _mm256_maskstore_ps(s + n_full, tail, _mm256_mul_ps(_mm256_maskload_ps(s + n_full, tail), inv));
}

// ---- AVX-512 ---------------------------------------------------------------------------------

BF_TARGET_AVX512 void exp2_array_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp2_avx512(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask, exp2_avx512(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

BF_TARGET_AVX512 void softmax_row_avx512(float* s, int64_t n) {
  const int64_t n_full = n & ~int64_t{15};
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - n_full)) - 1);
  __m512 vmax = _mm512_set1_ps(kNegInf);
  for (int64_t i = 0; i < n_full; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + i));
  if (tail) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, s + n_full));
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n_full; i += 16) {
    const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + i), max));
    _mm512_storeu_ps(s + i, p);
    vsum = _mm512_add_ps(vsum, p);
  }
  if (tail) {
    const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + n_full), max));
    _mm512_mask_storeu_ps(s + n_full, tail, p);
    vsum = _mm512_mask_add_ps(vsum, tail, vsum, p);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (int64_t i = 0; i < n_full; i += 16) _mm512_storeu_ps(s + i, _mm512_mul_ps(_mm512_loadu_ps(s + i), inv));
  if (tail) _mm512_mask_storeu_ps(s + n_full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, s + n_full), inv));
}

}  // namespace

void exp2_array(Isa isa, const float* x, float* y, int64_t n) {
  switch (isa) {
    case Isa::kAvx512: return exp2_array_avx512(x, y, n);
    case Isa::kAvx2: return exp2_array_avx2(x, y, n);
    case Isa::kScalar: return exp2_array_scalar(x, y, n);
  }
}

// A row softmax for each level, with the causal tail zeroed; the function pointer is taken
// once per op call.
template <void (*kRow)(float*, int64_t)>
void softmax_row(float* s, int64_t n_visible, int64_t n_total) {
  n_visible = std::clamp<int64_t>(n_visible, 0, n_total);
  if (n_visible > 0) kRow(s, n_visible);
  std::fill(s + n_visible, s + n_total, 0.0f);  // keys past the token's position
}

SoftmaxRowFn softmax_row_log2(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return softmax_row<softmax_row_avx512>;
    case Isa::kAvx2: return softmax_row<softmax_row_avx2>;
    case Isa::kScalar: break;
  }
  return softmax_row<softmax_row_scalar>;
}

}  // namespace bf::cpu::attn
