// Inner loops of the flash kernel for tiles of few rows (decode: one token, or one per head of a
// GQA group), one set per ISA level. Here the vectors run along head_dim instead of along rows:
// with a single row the column tiles of attention_flash_kernels.cc would fill 1 of 16 lanes and
// walk each key row one element per pass; row tiles read every key and value row once, front to
// back, and prefetch the rows a few keys ahead (the rows of one head are a page row apart,
// n_kv_heads · head_dim floats, so the hardware prefetchers rarely see a stream). Costs: one
// horizontal sum per (row, key), which is cheap next to the DRAM read that bounds decode.
//   scores      S[r, t] = Σ_d Q[r, d] · K[t, d]          vectors along d, one sum per (r, t)
//   softmax     per row: max, exp2, sum along the key axis
//   accumulate  O[r, d] = O[r, d]·corr[r] + Σ_t S[r, t] · V[t, d]
// A key row's last vector is loaded with a mask when head_dim is not a multiple of the vector
// width, so nothing past the row is read.
#include <immintrin.h>

#include <algorithm>
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
constexpr int64_t kPrefetchKeys = 6;  // rows ahead: enough DRAM requests in flight for one core

// Prefetch the `floats`-long row at p, one request per cache line.
inline void prefetch_row(const float* p, int64_t floats) {
  for (int64_t i = 0; i < floats; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// ---- scalar ----------------------------------------------------------------------------------

void row_scores_scalar(const FlashRowTile& tile, const float* const* keys, int64_t n_keys) {
  for (int64_t t = 0; t < n_keys; ++t)
    for (int64_t r = 0; r < tile.rows; ++r) {
      const float* q = tile.q + r * tile.hd_pad;
      float dot = 0;
      for (int64_t d = 0; d < tile.head_dim; ++d) dot += q[d] * keys[t][d];
      tile.s[r * kKeyBlock + t] = dot;
    }
}

void row_softmax_scalar(const FlashRowTile& tile, int64_t n_keys) {
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* s = tile.s + r * kKeyBlock;  // [n_keys]
    float mb = kNegInf;
    for (int64_t t = 0; t < n_keys; ++t) mb = std::max(mb, s[t]);
    const float m_new = std::max(tile.m[r], mb);
    const float corr = exp2_scalar(tile.m[r] - m_new);
    float sum = 0;
    for (int64_t t = 0; t < n_keys; ++t) sum += s[t] = exp2_scalar(s[t] - m_new);
    tile.l[r] = tile.l[r] * corr + sum;
    tile.m[r] = m_new;
    tile.corr[r] = corr;
  }
}

void row_accumulate_scalar(const FlashRowTile& tile, const float* const* values, int64_t n_keys) {
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* o = tile.o + r * tile.hd_pad;  // [head_dim]
    const float* p = tile.s + r * kKeyBlock;
    for (int64_t d = 0; d < tile.head_dim; ++d) o[d] *= tile.corr[r];
    for (int64_t t = 0; t < n_keys; ++t)
      for (int64_t d = 0; d < tile.head_dim; ++d) o[d] += p[t] * values[t][d];
  }
}

// ---- AVX2: 8 dims per vector -----------------------------------------------------------------

BF_TARGET_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

BF_TARGET_AVX2 inline float hmax_avx2(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

// Lanes [0, n) of a 256-bit mask, 0 ≤ n ≤ 8.
BF_TARGET_AVX2 inline __m256i lanes_avx2(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

BF_TARGET_AVX2 void row_scores_avx2(const FlashRowTile& tile, const float* const* keys, int64_t n_keys) {
  const int64_t nv = (tile.head_dim + 7) / 8;  // vectors per row, the last one masked
  const __m256i tail = lanes_avx2(tile.head_dim - 8 * (nv - 1));
  for (int64_t t = 0; t < n_keys; ++t) {
    if (t + kPrefetchKeys < n_keys) prefetch_row(keys[t + kPrefetchKeys], tile.head_dim);
    const float* k = keys[t];
    for (int64_t r = 0; r < tile.rows; ++r) {
      const float* q = tile.q + r * tile.hd_pad;
      __m256 acc = _mm256_mul_ps(_mm256_load_ps(q + 8 * (nv - 1)), _mm256_maskload_ps(k + 8 * (nv - 1), tail));
      for (int64_t v = 0; v + 1 < nv; ++v)
        acc = _mm256_fmadd_ps(_mm256_load_ps(q + 8 * v), _mm256_loadu_ps(k + 8 * v), acc);
      tile.s[r * kKeyBlock + t] = hsum_avx2(acc);
    }
  }
}

BF_TARGET_AVX2 void row_softmax_avx2(const FlashRowTile& tile, int64_t n_keys) {
  const int64_t n_full = n_keys & ~int64_t{7};
  const __m256i tail = lanes_avx2(n_keys - n_full);
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* s = tile.s + r * kKeyBlock;  // [n_keys]; the block holds kKeyBlock, a multiple of 8
    __m256 vmax = _mm256_set1_ps(kNegInf);
    for (int64_t t = 0; t < n_full; t += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + t));
    if (n_full < n_keys)
      vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_loadu_ps(s + n_full), _mm256_castsi256_ps(tail)));
    const float m_new = std::max(tile.m[r], hmax_avx2(vmax));
    const float corr = exp2_scalar(tile.m[r] - m_new);
    const __m256 m = _mm256_set1_ps(m_new);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t t = 0; t < n_full; t += 8) {
      const __m256 p = exp2_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + t), m));
      _mm256_storeu_ps(s + t, p);
      sum = _mm256_add_ps(sum, p);
    }
    if (n_full < n_keys) {
      const __m256 p =
          _mm256_and_ps(exp2_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + n_full), m)), _mm256_castsi256_ps(tail));
      _mm256_storeu_ps(s + n_full, p);
      sum = _mm256_add_ps(sum, p);
    }
    tile.l[r] = tile.l[r] * corr + hsum_avx2(sum);
    tile.m[r] = m_new;
    tile.corr[r] = corr;
  }
}

// O[r, 8·v0 …] for CV vectors; `tail` masks the chunk's last vector.
template <int CV>
BF_TARGET_AVX2 inline void row_accumulate_chunk_avx2(float* o, const float* p, float corr, const float* const* values,
                                                     int64_t d0, __m256i tail, int64_t n_keys, int64_t head_dim) {
  __m256 acc[CV];
  const __m256 c = _mm256_set1_ps(corr);
#pragma GCC unroll 8
  for (int i = 0; i < CV; ++i) acc[i] = _mm256_mul_ps(_mm256_load_ps(o + d0 + 8 * i), c);
  for (int64_t t = 0; t < n_keys; ++t) {
    if (t + kPrefetchKeys < n_keys && d0 == 0) prefetch_row(values[t + kPrefetchKeys], head_dim);
    const float* v = values[t] + d0;
    const __m256 pt = _mm256_broadcast_ss(p + t);
#pragma GCC unroll 8
    for (int i = 0; i + 1 < CV; ++i) acc[i] = _mm256_fmadd_ps(pt, _mm256_loadu_ps(v + 8 * i), acc[i]);
    acc[CV - 1] = _mm256_fmadd_ps(pt, _mm256_maskload_ps(v + 8 * (CV - 1), tail), acc[CV - 1]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < CV; ++i) _mm256_store_ps(o + d0 + 8 * i, acc[i]);
}

BF_TARGET_AVX2 void row_accumulate_avx2(const FlashRowTile& tile, const float* const* values, int64_t n_keys) {
  const int64_t nv = (tile.head_dim + 7) / 8;
  const __m256i all = lanes_avx2(8), tail = lanes_avx2(tile.head_dim - 8 * (nv - 1));
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* o = tile.o + r * tile.hd_pad;
    const float* p = tile.s + r * kKeyBlock;
    for (int64_t v0 = 0; v0 < nv; v0 += 8) {  // 8 vectors of 8 dims: 8 accumulators + loads fit 16 registers
      const int64_t cv = std::min<int64_t>(8, nv - v0);
      const __m256i mask = v0 + cv == nv ? tail : all;
      switch (cv) {
        case 8: row_accumulate_chunk_avx2<8>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 7: row_accumulate_chunk_avx2<7>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 6: row_accumulate_chunk_avx2<6>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 5: row_accumulate_chunk_avx2<5>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 4: row_accumulate_chunk_avx2<4>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 3: row_accumulate_chunk_avx2<3>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        case 2: row_accumulate_chunk_avx2<2>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
        default: row_accumulate_chunk_avx2<1>(o, p, tile.corr[r], values, 8 * v0, mask, n_keys, tile.head_dim); break;
      }
    }
  }
}

// ---- AVX-512: 16 dims per vector -------------------------------------------------------------

BF_TARGET_AVX512 inline __mmask16 lanes_avx512(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1);
}

BF_TARGET_AVX512 void row_scores_avx512(const FlashRowTile& tile, const float* const* keys, int64_t n_keys) {
  const int64_t nv = (tile.head_dim + 15) / 16;
  const __mmask16 tail = lanes_avx512(tile.head_dim - 16 * (nv - 1));
  for (int64_t t = 0; t < n_keys; ++t) {
    if (t + kPrefetchKeys < n_keys) prefetch_row(keys[t + kPrefetchKeys], tile.head_dim);
    const float* k = keys[t];
    for (int64_t r = 0; r < tile.rows; ++r) {
      const float* q = tile.q + r * tile.hd_pad;
      __m512 acc = _mm512_mul_ps(_mm512_load_ps(q + 16 * (nv - 1)), _mm512_maskz_loadu_ps(tail, k + 16 * (nv - 1)));
      for (int64_t v = 0; v + 1 < nv; ++v)
        acc = _mm512_fmadd_ps(_mm512_load_ps(q + 16 * v), _mm512_loadu_ps(k + 16 * v), acc);
      tile.s[r * kKeyBlock + t] = _mm512_reduce_add_ps(acc);
    }
  }
}

BF_TARGET_AVX512 void row_softmax_avx512(const FlashRowTile& tile, int64_t n_keys) {
  const int64_t n_full = n_keys & ~int64_t{15};
  const __mmask16 tail = lanes_avx512(n_keys - n_full);
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* s = tile.s + r * kKeyBlock;  // [n_keys]
    __m512 vmax = _mm512_set1_ps(kNegInf);
    for (int64_t t = 0; t < n_full; t += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + t));
    if (n_full < n_keys) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, s + n_full));
    const float m_new = std::max(tile.m[r], _mm512_reduce_max_ps(vmax));
    const float corr = exp2_scalar(tile.m[r] - m_new);
    const __m512 m = _mm512_set1_ps(m_new);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t t = 0; t < n_full; t += 16) {
      const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + t), m));
      _mm512_storeu_ps(s + t, p);
      sum = _mm512_add_ps(sum, p);
    }
    if (n_full < n_keys) {
      const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + n_full), m));
      _mm512_mask_storeu_ps(s + n_full, tail, p);
      sum = _mm512_mask_add_ps(sum, tail, sum, p);
    }
    tile.l[r] = tile.l[r] * corr + _mm512_reduce_add_ps(sum);
    tile.m[r] = m_new;
    tile.corr[r] = corr;
  }
}

template <int CV>
BF_TARGET_AVX512 inline void row_accumulate_chunk_avx512(float* o, const float* p, float corr,
                                                         const float* const* values, int64_t d0, __mmask16 tail,
                                                         int64_t n_keys, int64_t head_dim) {
  __m512 acc[CV];
  const __m512 c = _mm512_set1_ps(corr);
#pragma GCC unroll 16
  for (int i = 0; i < CV; ++i) acc[i] = _mm512_mul_ps(_mm512_load_ps(o + d0 + 16 * i), c);
  for (int64_t t = 0; t < n_keys; ++t) {
    if (t + kPrefetchKeys < n_keys && d0 == 0) prefetch_row(values[t + kPrefetchKeys], head_dim);
    const float* v = values[t] + d0;
    const __m512 pt = _mm512_set1_ps(p[t]);
#pragma GCC unroll 16
    for (int i = 0; i + 1 < CV; ++i) acc[i] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(v + 16 * i), acc[i]);
    acc[CV - 1] = _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(tail, v + 16 * (CV - 1)), acc[CV - 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < CV; ++i) _mm512_store_ps(o + d0 + 16 * i, acc[i]);
}

BF_TARGET_AVX512 void row_accumulate_avx512(const FlashRowTile& tile, const float* const* values, int64_t n_keys) {
  const int64_t nv = (tile.head_dim + 15) / 16;
  const __mmask16 tail = lanes_avx512(tile.head_dim - 16 * (nv - 1));
  for (int64_t r = 0; r < tile.rows; ++r) {
    float* o = tile.o + r * tile.hd_pad;
    const float* p = tile.s + r * kKeyBlock;
    for (int64_t v0 = 0; v0 < nv; v0 += 8) {  // up to 8 vectors (128 dims) in registers per pass
      const int64_t cv = std::min<int64_t>(8, nv - v0);
      const __mmask16 mask = v0 + cv == nv ? tail : __mmask16{0xFFFF};
      switch (cv) {
        case 8: row_accumulate_chunk_avx512<8>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 7: row_accumulate_chunk_avx512<7>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 6: row_accumulate_chunk_avx512<6>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 5: row_accumulate_chunk_avx512<5>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 4: row_accumulate_chunk_avx512<4>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 3: row_accumulate_chunk_avx512<3>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        case 2: row_accumulate_chunk_avx512<2>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim); break;
        default:
          row_accumulate_chunk_avx512<1>(o, p, tile.corr[r], values, 16 * v0, mask, n_keys, tile.head_dim);
          break;
      }
    }
  }
}

}  // namespace

FlashRowKernels flash_row_kernels(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return {row_scores_avx512, row_softmax_avx512, row_accumulate_avx512};
    case Isa::kAvx2: return {row_scores_avx2, row_softmax_avx2, row_accumulate_avx2};
    case Isa::kScalar: break;
  }
  return {row_scores_scalar, row_softmax_scalar, row_accumulate_scalar};
}

}  // namespace bf::cpu::attn
