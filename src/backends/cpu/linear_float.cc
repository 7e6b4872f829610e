// Our own f32 GEMV / GEMM for every weight type (no BLAS): f32 weights are read in place; other
// types are dequantized (linear_dequant.cc) panel by panel into a small f32 buffer that stays in
// L1/L2 while every activation row passes over it.
//
// The tile kernels compute dot products along k: a tile of R activation rows × C weight rows keeps
// R·C vector accumulators, loads R + C vectors per step and needs no transposed copy of anything;
// each accumulator is reduced once at the end of a k-block. k is blocked (kKBlock) so that the
// activation rows of a block stay in L2 across the panels of a chunk; y accumulates the k-blocks
// in order, then the bias.
#include <immintrin.h>

#include <algorithm>

#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized value that its
// flow analysis reports as "may be used uninitialized" inside target-attributed functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::lin {
namespace {

// out[r * C + c] = Σ_{t < len} x[r·ldx + t] · w[c·ldw + t], for r < R, c < C. No software
// prefetch here: with C rows streaming at once the hardware prefetcher keeps up (measured: a
// prefetch 8 KiB ahead made the f32 GEMV ~10 % slower, and GEMM tiles re-read cached panels).
using TileFn = void (*)(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t len, float* out);

constexpr int kMaxTile = 4;
constexpr int64_t kKBlock = 2048;  // multiple of 64: every block type's blocks stay whole

// ---- scalar ------------------------------------------------------------------------------------

// Four partial sums per output (t mod 4), added pairwise at the end: the same order whatever R, C.
template <int R, int C>
void tile_scalar(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t len, float* out) {
  float acc[R][C][4] = {};
  int64_t t = 0;
  for (; t + 4 <= len; t += 4)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        for (int l = 0; l < 4; ++l) acc[r][c][l] += x[r * ldx + t + l] * w[c * ldw + t + l];
  for (; t < len; ++t)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c][t % 4] += x[r * ldx + t] * w[c * ldw + t];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = (acc[r][c][0] + acc[r][c][1]) + (acc[r][c][2] + acc[r][c][3]);
}

// ---- AVX2 --------------------------------------------------------------------------------------

BF_TARGET_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R, int C>
BF_TARGET_AVX2 void tile_avx2(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t len, float* out) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= len; t += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_ps(w + c * ldw + t);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + t);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (t < len) {  // masked loads read nothing past the end
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(len - t)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_maskload_ps(w + c * ldw + t, mask);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_maskload_ps(x + r * ldx + t, mask);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = hsum_avx2(acc[r][c]);
}

// ---- AVX-512 -----------------------------------------------------------------------------------

template <int R, int C>
BF_TARGET_AVX512 void tile_avx512(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t len, float* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= len; t += 16) {
    __m512 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm512_loadu_ps(w + c * ldw + t);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + t);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (t < len) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (len - t)) - 1);
    __m512 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm512_maskz_loadu_ps(mask, w + c * ldw + t);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * ldx + t);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = _mm512_reduce_add_ps(acc[r][c]);
}

// ---- tables ------------------------------------------------------------------------------------

struct Tiles {
  int rows, cols;                 // the full tile
  TileFn fn[kMaxTile][kMaxTile];  // [R − 1][C − 1]
};

template <template <int, int> class K>
constexpr Tiles make_tiles(int rows, int cols) {
  Tiles t{rows, cols, {}};
  t.fn[0][0] = K<1, 1>::f, t.fn[0][1] = K<1, 2>::f, t.fn[0][2] = K<1, 3>::f, t.fn[0][3] = K<1, 4>::f;
  t.fn[1][0] = K<2, 1>::f, t.fn[1][1] = K<2, 2>::f, t.fn[1][2] = K<2, 3>::f, t.fn[1][3] = K<2, 4>::f;
  t.fn[2][0] = K<3, 1>::f, t.fn[2][1] = K<3, 2>::f, t.fn[2][2] = K<3, 3>::f, t.fn[2][3] = K<3, 4>::f;
  t.fn[3][0] = K<4, 1>::f, t.fn[3][1] = K<4, 2>::f, t.fn[3][2] = K<4, 3>::f, t.fn[3][3] = K<4, 4>::f;
  return t;
}
template <int R, int C>
struct ScalarK {
  static constexpr TileFn f = tile_scalar<R, C>;
};
template <int R, int C>
struct Avx2K {
  static constexpr TileFn f = tile_avx2<R, C>;
};
template <int R, int C>
struct Avx512K {
  static constexpr TileFn f = tile_avx512<R, C>;
};

// Tile shapes: as many accumulators as the registers hold next to the R + C loaded vectors
// (AVX-512: 16 of 32 zmm; AVX2: 12 of 16 ymm, 4 × 3; scalar: 4 × 2 × 4 lanes in SSE registers).
const Tiles& tiles_for(Isa isa) {
  static const Tiles scalar = make_tiles<ScalarK>(4, 2);
  static const Tiles avx2 = make_tiles<Avx2K>(4, 3);
  static const Tiles avx512 = make_tiles<Avx512K>(4, 4);
  switch (isa) {
    case Isa::kAvx512: return avx512;
    case Isa::kAvx2: return avx2;
    case Isa::kScalar: break;
  }
  return scalar;
}

}  // namespace

void fgemm(const CpuContext& ctx, const Problem& p) {
  const Tiles& tiles = tiles_for(ctx.isa);
  const DequantFn dequant = dequant_for(ctx.isa);
  const int nr = tiles.cols, mr = tiles.rows;
  const bool in_place = p.wtype == DType::kF32;  // f32 weights need no panel copy
  const int64_t kc = std::min(p.k, kKBlock);
  const int64_t panels = (p.n + nr - 1) / nr;
  // GEMV: long contiguous runs of the weight per chunk; GEMM: ≥ 4 panels of compute per chunk.
  const int64_t grain =
      p.m <= kGemvMaxRows ? (stream_grain(p.w_row_bytes, p.n, ctx.pool->size(), nr) + nr - 1) / nr : 4;
  ctx.pool->parallel_for(panels, grain, [&](int64_t pb, int64_t pe) {
    thread_local AlignedVector<float> buf;  // [nr, kc]: one dequantized panel
    if (!in_place) buf.resize(static_cast<size_t>(nr * kc));
    float out[kMaxTile * kMaxTile];
    for (int64_t k0 = 0; k0 < p.k; k0 += kc) {
      const int64_t len = std::min(kc, p.k - k0);
      for (int64_t pi = pb; pi < pe; ++pi) {
        const int64_t j = pi * nr;
        const int nc = static_cast<int>(std::min<int64_t>(nr, p.n - j));
        const float* w;
        int64_t ldw;
        if (in_place) {
          w = reinterpret_cast<const float*>(p.row(j)) + k0;
          ldw = p.w_row_bytes / 4;
        } else {
          for (int c = 0; c < nc; ++c) dequant(p.wtype, p.row(j + c), k0, len, p.row_scale(j + c), buf.data() + c * kc);
          w = buf.data();
          ldw = kc;
        }
        for (int64_t i = 0; i < p.m; i += mr) {
          const int rc = static_cast<int>(std::min<int64_t>(mr, p.m - i));
          tiles.fn[rc - 1][nc - 1](p.x + i * p.ldx + k0, p.ldx, w, ldw, len, out);
          for (int r = 0; r < rc; ++r) {
            float* y = p.y + (i + r) * p.ldy + j;
            for (int c = 0; c < nc; ++c) y[c] = k0 == 0 ? out[r * nc + c] : y[c] + out[r * nc + c];
          }
        }
      }
    }
    if (p.bias)
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = pb * nr; j < std::min(p.n, pe * nr); ++j) p.y[i * p.ldy + j] += p.bias[j];
  });
}

}  // namespace bf::cpu::lin
