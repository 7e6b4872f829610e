// Inner loops of the flash attention kernel (see attention_internal.h for the transposed tile
// layout), one set per ISA level. All three loops run their vectors over the query rows of the
// tile, so they need neither packed keys nor horizontal sums:
//   scores      Sᵀ[t, r]  = Σ_d K[t, d] · Qᵀ[d, r]        broadcast K[t, d], FMA a row of Qᵀ
//   softmax     per row: max, exp2, sum down the key axis   vertical, exp2 from attention_exp-inl.h
//   accumulate  Oᵀ[d, r] = Oᵀ[d, r]·corr[r] + Σ_t V[t, d] · Pᵀ[t, r]
// Register tiles: AVX-512 keeps up to 4 row vectors × 6 keys (or 6 dims) in 24 of its 32
// registers; AVX2 keeps 2 row vectors × 6 in 12 of its 16. Each accumulator sums in a fixed
// order, so the result of a work item depends on the ISA level only.
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

// ---- scalar: plain loops over the row axis (the compiler may use SSE2 on them) ---------------

void scores_scalar(const FlashTile& tile, const float* const* keys, int64_t n_keys) {
  const int64_t rp = tile.rows_pad;
  for (int64_t t = 0; t < n_keys; ++t) {
    float* s = tile.st + t * rp;  // [rows_pad]
    std::fill(s, s + rp, 0.0f);
    for (int64_t d = 0; d < tile.head_dim; ++d) {
      const float k = keys[t][d];
      const float* q = tile.qt + d * rp;
      for (int64_t r = 0; r < rp; ++r) s[r] += k * q[r];
    }
  }
}

void softmax_scalar(const FlashTile& tile, int64_t n_keys) {
  const int64_t rp = tile.rows_pad;
  for (int64_t r = 0; r < rp; ++r) {
    float mb = kNegInf;
    for (int64_t t = 0; t < n_keys; ++t) mb = std::max(mb, tile.st[t * rp + r]);
    const float m_new = std::max(tile.m[r], mb);
    const float corr = exp2_scalar(tile.m[r] - m_new);
    float sum = 0;
    for (int64_t t = 0; t < n_keys; ++t) sum += tile.st[t * rp + r] = exp2_scalar(tile.st[t * rp + r] - m_new);
    tile.l[r] = tile.l[r] * corr + sum;
    tile.m[r] = m_new;
    tile.corr[r] = corr;
  }
}

void accumulate_scalar(const FlashTile& tile, const float* const* values, int64_t n_keys) {
  const int64_t rp = tile.rows_pad;
  for (int64_t d = 0; d < tile.head_dim; ++d) {
    float* o = tile.ot + d * rp;  // [rows_pad]
    for (int64_t r = 0; r < rp; ++r) o[r] *= tile.corr[r];
    for (int64_t t = 0; t < n_keys; ++t) {
      const float v = values[t][d];
      const float* p = tile.st + t * rp;
      for (int64_t r = 0; r < rp; ++r) o[r] += v * p[r];
    }
  }
}

// Strided loads from the q rows (cached after the first d) are cheaper than strided stores.
void load_q_scalar(const FlashTile& tile, const float* const* q_rows, int64_t rows, float scale) {
  const int64_t rp = tile.rows_pad;
  for (int64_t d = 0; d < tile.head_dim; ++d) {
    float* qt = tile.qt + d * rp;  // [rp]
    for (int64_t r = 0; r < rows; ++r) qt[r] = q_rows[r][d] * scale;
    std::fill(qt + rows, qt + rp, 0.0f);
  }
}

void store_out_scalar(const FlashTile& tile, float* const* out_rows, int64_t rows, const float* inv_l) {
  const int64_t rp = tile.rows_pad;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < tile.head_dim; ++d) out_rows[r][d] = tile.ot[d * rp + r] * inv_l[r];
}

// ---- AVX2: 8 rows per vector -----------------------------------------------------------------

// Sᵀ for NR keys × RV row vectors; qt and st start at the tile's first row vector.
template <int RV, int NR>
BF_TARGET_AVX2 inline void scores_tile_avx2(const float* qt, int64_t rp, int64_t head_dim, const float* const* keys,
                                            float* st) {
  const float* kp[NR];
  for (int i = 0; i < NR; ++i) kp[i] = keys[i];
  __m256 acc[NR][RV];
#pragma GCC unroll 16
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) acc[i][v] = _mm256_setzero_ps();
  for (int64_t d = 0; d < head_dim; ++d) {
    __m256 q[RV];
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) q[v] = _mm256_load_ps(qt + d * rp + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i) {
      const __m256 k = _mm256_broadcast_ss(kp[i] + d);
#pragma GCC unroll 4
      for (int v = 0; v < RV; ++v) acc[i][v] = _mm256_fmadd_ps(k, q[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) _mm256_store_ps(st + i * rp + 8 * v, acc[i][v]);
}

template <int RV, int NR>
BF_TARGET_AVX2 void scores_rows_avx2(const FlashTile& tile, const float* const* keys, int64_t n_keys, int64_t r0) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  const float* qt = tile.qt + r0;
  float* st = tile.st + r0;
  int64_t t = 0;
  for (; t + NR <= n_keys; t += NR) scores_tile_avx2<RV, NR>(qt, rp, hd, keys + t, st + t * rp);
  for (; t + 2 <= n_keys; t += 2) scores_tile_avx2<RV, 2>(qt, rp, hd, keys + t, st + t * rp);
  if (t < n_keys) scores_tile_avx2<RV, 1>(qt, rp, hd, keys + t, st + t * rp);
}

BF_TARGET_AVX2 void scores_avx2(const FlashTile& tile, const float* const* keys, int64_t n_keys) {
  for (int64_t r0 = 0; r0 < tile.rows_pad; r0 += 16) scores_rows_avx2<2, 6>(tile, keys, n_keys, r0);
}

BF_TARGET_AVX2 void softmax_avx2(const FlashTile& tile, int64_t n_keys) {
  const int64_t rp = tile.rows_pad;
  for (int64_t r = 0; r < rp; r += 8) {
    float* s = tile.st + r;
    __m256 mb = _mm256_set1_ps(kNegInf);
    for (int64_t t = 0; t < n_keys; ++t) mb = _mm256_max_ps(mb, _mm256_load_ps(s + t * rp));
    const __m256 m_old = _mm256_load_ps(tile.m + r);
    const __m256 m_new = _mm256_max_ps(m_old, mb);
    const __m256 corr = exp2_avx2(_mm256_sub_ps(m_old, m_new));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t t = 0; t < n_keys; ++t) {
      const __m256 p = exp2_avx2(_mm256_sub_ps(_mm256_load_ps(s + t * rp), m_new));
      _mm256_store_ps(s + t * rp, p);
      sum = _mm256_add_ps(sum, p);
    }
    _mm256_store_ps(tile.l + r, _mm256_fmadd_ps(_mm256_load_ps(tile.l + r), corr, sum));
    _mm256_store_ps(tile.m + r, m_new);
    _mm256_store_ps(tile.corr + r, corr);
  }
}

// Oᵀ for DR dims (from d0) × RV row vectors; ot, st and corr start at the first row vector.
template <int RV, int DR>
BF_TARGET_AVX2 inline void accumulate_tile_avx2(float* ot, int64_t rp, const float* corr, const float* st,
                                                const float* const* values, int64_t d0, int64_t n_keys) {
  __m256 c[RV];
  __m256 acc[DR][RV];
#pragma GCC unroll 4
  for (int v = 0; v < RV; ++v) c[v] = _mm256_load_ps(corr + 8 * v);
#pragma GCC unroll 16
  for (int i = 0; i < DR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) acc[i][v] = _mm256_mul_ps(_mm256_load_ps(ot + (d0 + i) * rp + 8 * v), c[v]);
  for (int64_t t = 0; t < n_keys; ++t) {
    const float* vt = values[t] + d0;
    __m256 p[RV];
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) p[v] = _mm256_load_ps(st + t * rp + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < DR; ++i) {
      const __m256 x = _mm256_broadcast_ss(vt + i);
#pragma GCC unroll 4
      for (int v = 0; v < RV; ++v) acc[i][v] = _mm256_fmadd_ps(x, p[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < DR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) _mm256_store_ps(ot + (d0 + i) * rp + 8 * v, acc[i][v]);
}

BF_TARGET_AVX2 void accumulate_avx2(const FlashTile& tile, const float* const* values, int64_t n_keys) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  for (int64_t r0 = 0; r0 < rp; r0 += 16) {
    float* ot = tile.ot + r0;
    const float* st = tile.st + r0;
    const float* corr = tile.corr + r0;
    int64_t d = 0;
    for (; d + 6 <= hd; d += 6) accumulate_tile_avx2<2, 6>(ot, rp, corr, st, values, d, n_keys);
    for (; d + 2 <= hd; d += 2) accumulate_tile_avx2<2, 2>(ot, rp, corr, st, values, d, n_keys);
    if (d < hd) accumulate_tile_avx2<2, 1>(ot, rp, corr, st, values, d, n_keys);
  }
}

// ---- AVX-512: 16 rows per vector -------------------------------------------------------------

template <int RV, int NR>
BF_TARGET_AVX512 inline void scores_tile_avx512(const float* qt, int64_t rp, int64_t head_dim, const float* const* keys,
                                                float* st) {
  const float* kp[NR];
  for (int i = 0; i < NR; ++i) kp[i] = keys[i];
  __m512 acc[NR][RV];
#pragma GCC unroll 16
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < head_dim; ++d) {
    __m512 q[RV];
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) q[v] = _mm512_load_ps(qt + d * rp + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < NR; ++i) {
      const __m512 k = _mm512_set1_ps(kp[i][d]);
#pragma GCC unroll 4
      for (int v = 0; v < RV; ++v) acc[i][v] = _mm512_fmadd_ps(k, q[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) _mm512_store_ps(st + i * rp + 16 * v, acc[i][v]);
}

template <int RV, int NR>
BF_TARGET_AVX512 void scores_rows_avx512(const FlashTile& tile, const float* const* keys, int64_t n_keys, int64_t r0) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  const float* qt = tile.qt + r0;
  float* st = tile.st + r0;
  int64_t t = 0;
  for (; t + NR <= n_keys; t += NR) scores_tile_avx512<RV, NR>(qt, rp, hd, keys + t, st + t * rp);
  for (; t + 4 <= n_keys; t += 4) scores_tile_avx512<RV, 4>(qt, rp, hd, keys + t, st + t * rp);
  for (; t + 2 <= n_keys; t += 2) scores_tile_avx512<RV, 2>(qt, rp, hd, keys + t, st + t * rp);
  if (t < n_keys) scores_tile_avx512<RV, 1>(qt, rp, hd, keys + t, st + t * rp);
}

BF_TARGET_AVX512 void scores_avx512(const FlashTile& tile, const float* const* keys, int64_t n_keys) {
  const int64_t n_vec = tile.rows_pad / 16;
  for (int64_t v0 = 0; v0 < n_vec; v0 += 4) {
    switch (std::min<int64_t>(4, n_vec - v0)) {
      case 4: scores_rows_avx512<4, 6>(tile, keys, n_keys, v0 * 16); break;
      case 3: scores_rows_avx512<3, 8>(tile, keys, n_keys, v0 * 16); break;
      case 2: scores_rows_avx512<2, 12>(tile, keys, n_keys, v0 * 16); break;
      default: scores_rows_avx512<1, 16>(tile, keys, n_keys, v0 * 16); break;
    }
  }
}

BF_TARGET_AVX512 void softmax_avx512(const FlashTile& tile, int64_t n_keys) {
  const int64_t rp = tile.rows_pad;
  for (int64_t r = 0; r < rp; r += 16) {
    float* s = tile.st + r;
    __m512 mb = _mm512_set1_ps(kNegInf);
    for (int64_t t = 0; t < n_keys; ++t) mb = _mm512_max_ps(mb, _mm512_load_ps(s + t * rp));
    const __m512 m_old = _mm512_load_ps(tile.m + r);
    const __m512 m_new = _mm512_max_ps(m_old, mb);
    const __m512 corr = exp2_avx512(_mm512_sub_ps(m_old, m_new));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t t = 0; t < n_keys; ++t) {
      const __m512 p = exp2_avx512(_mm512_sub_ps(_mm512_load_ps(s + t * rp), m_new));
      _mm512_store_ps(s + t * rp, p);
      sum = _mm512_add_ps(sum, p);
    }
    _mm512_store_ps(tile.l + r, _mm512_fmadd_ps(_mm512_load_ps(tile.l + r), corr, sum));
    _mm512_store_ps(tile.m + r, m_new);
    _mm512_store_ps(tile.corr + r, corr);
  }
}

template <int RV, int DR>
BF_TARGET_AVX512 inline void accumulate_tile_avx512(float* ot, int64_t rp, const float* corr, const float* st,
                                                    const float* const* values, int64_t d0, int64_t n_keys) {
  __m512 c[RV];
  __m512 acc[DR][RV];
#pragma GCC unroll 4
  for (int v = 0; v < RV; ++v) c[v] = _mm512_load_ps(corr + 16 * v);
#pragma GCC unroll 16
  for (int i = 0; i < DR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) acc[i][v] = _mm512_mul_ps(_mm512_load_ps(ot + (d0 + i) * rp + 16 * v), c[v]);
  for (int64_t t = 0; t < n_keys; ++t) {
    const float* vt = values[t] + d0;
    __m512 p[RV];
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) p[v] = _mm512_load_ps(st + t * rp + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < DR; ++i) {
      const __m512 x = _mm512_set1_ps(vt[i]);
#pragma GCC unroll 4
      for (int v = 0; v < RV; ++v) acc[i][v] = _mm512_fmadd_ps(x, p[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < DR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < RV; ++v) _mm512_store_ps(ot + (d0 + i) * rp + 16 * v, acc[i][v]);
}

template <int RV, int DR>
BF_TARGET_AVX512 void accumulate_rows_avx512(const FlashTile& tile, const float* const* values, int64_t n_keys,
                                             int64_t r0) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  float* ot = tile.ot + r0;
  const float* st = tile.st + r0;
  const float* corr = tile.corr + r0;
  int64_t d = 0;
  for (; d + DR <= hd; d += DR) accumulate_tile_avx512<RV, DR>(ot, rp, corr, st, values, d, n_keys);
  for (; d + 4 <= hd; d += 4) accumulate_tile_avx512<RV, 4>(ot, rp, corr, st, values, d, n_keys);
  for (; d + 2 <= hd; d += 2) accumulate_tile_avx512<RV, 2>(ot, rp, corr, st, values, d, n_keys);
  if (d < hd) accumulate_tile_avx512<RV, 1>(ot, rp, corr, st, values, d, n_keys);
}

BF_TARGET_AVX512 void accumulate_avx512(const FlashTile& tile, const float* const* values, int64_t n_keys) {
  const int64_t n_vec = tile.rows_pad / 16;
  for (int64_t v0 = 0; v0 < n_vec; v0 += 4) {
    switch (std::min<int64_t>(4, n_vec - v0)) {
      case 4: accumulate_rows_avx512<4, 6>(tile, values, n_keys, v0 * 16); break;
      case 3: accumulate_rows_avx512<3, 8>(tile, values, n_keys, v0 * 16); break;
      case 2: accumulate_rows_avx512<2, 12>(tile, values, n_keys, v0 * 16); break;
      default: accumulate_rows_avx512<1, 16>(tile, values, n_keys, v0 * 16); break;
    }
  }
}

// v[i] ← column i of the 16 × 16 matrix whose rows are v[0 … 15]: pairs of rows interleaved,
// then pairs of pairs, then 128-bit quarters regrouped (64 shuffles).
BF_TARGET_AVX512 inline void transpose16(__m512 (&v)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // quarter c of t[2i]: (2i, 4c) (2i+1, 4c) (2i, 4c+1) (2i+1, 4c+1)
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // quarter c of u[4i + j]: rows 4i … 4i+3 of column 4c + j
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int j = 0; j < 4; ++j) {  // column 4c + j: quarter c of u[j], u[4 + j], u[8 + j], u[12 + j]
    const __m512 ab_lo = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), ab_hi = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    const __m512 cd_lo = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 cd_hi = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    v[j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);
    v[4 + j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xDD);
    v[8 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xDD);
  }
}

// 16 × 16 blocks through registers (the same one multiply per element as the scalar loops).
BF_TARGET_AVX512 void load_q_avx512(const FlashTile& tile, const float* const* q_rows, int64_t rows, float scale) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t d0 = 0; d0 < hd; d0 += 16) {
    const int64_t nd = std::min<int64_t>(16, hd - d0);
    const auto dmask = static_cast<__mmask16>((1u << nd) - 1);
    for (int64_t r0 = 0; r0 < rp; r0 += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] =
            r0 + i < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(dmask, q_rows[r0 + i] + d0), s) : _mm512_setzero_ps();
      transpose16(v);
      for (int64_t i = 0; i < nd; ++i) _mm512_store_ps(tile.qt + (d0 + i) * rp + r0, v[i]);
    }
  }
}

BF_TARGET_AVX512 void store_out_avx512(const FlashTile& tile, float* const* out_rows, int64_t rows,
                                       const float* inv_l) {
  const int64_t rp = tile.rows_pad, hd = tile.head_dim;
  for (int64_t d0 = 0; d0 < hd; d0 += 16) {
    const int64_t nd = std::min<int64_t>(16, hd - d0);
    const auto dmask = static_cast<__mmask16>((1u << nd) - 1);
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
      __m512 v[16];
      for (int i = 0; i < 16; ++i) v[i] = i < nd ? _mm512_load_ps(tile.ot + (d0 + i) * rp + r0) : _mm512_setzero_ps();
      transpose16(v);
      for (int64_t i = 0; i < std::min<int64_t>(16, rows - r0); ++i)
        _mm512_mask_storeu_ps(out_rows[r0 + i] + d0, dmask, _mm512_mul_ps(v[i], _mm512_set1_ps(inv_l[r0 + i])));
    }
  }
}

}  // namespace

FlashKernels flash_kernels(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return {scores_avx512, softmax_avx512, accumulate_avx512, load_q_avx512, store_out_avx512};
    case Isa::kAvx2: return {scores_avx2, softmax_avx2, accumulate_avx2, load_q_scalar, store_out_scalar};
    case Isa::kScalar: break;
  }
  return {scores_scalar, softmax_scalar, accumulate_scalar, load_q_scalar, store_out_scalar};
}

}  // namespace bf::cpu::attn
