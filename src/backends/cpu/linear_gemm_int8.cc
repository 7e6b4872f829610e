// q8_0 / q4_0 weights × int8 activations for many rows (prefill, batches), AVX-512 VNNI.
//
// Per panel of 32 output features (32 weight rows), the weight blocks are unpacked once into
// signed bytes in the order the micro-kernel streams them: for block b and k-step s (4 values),
// the 4 bytes of each of the 32 rows side by side, so one 64-byte load feeds 16 rows × 4 values.
// Packing costs O(32·k) per panel and is reused by every activation row (m/6 tiles).
//
// The micro-kernel holds a tile of 6 activation rows × 32 features: per block, int32 sums from 8
// vpdpbusd steps each (activation 4 bytes broadcast, as unsigned q + 128, × 16 weight rows), then
// one conversion and two float ops fold the block into f32 accumulators with dw · dx. The +128 is
// removed by starting each block's sums at −128 · Σ w (precomputed per row and block in the panel).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"
#include "ops/convert.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized value that its
// flow analysis reports as "may be used uninitialized" inside target-attributed functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace bf::cpu::lin {
namespace {

constexpr int kPanel = 32;  // weight rows (output features) per panel: two zmm of int32 / f32
constexpr int kTileRows = 6;  // activation rows per micro-tile: 12 int32 + 12 f32 accumulators

// One panel, for nb blocks: w [nb][8 steps][32 rows][4 bytes] (signed), dw [nb][32] (f32 scales),
// neg_sum [nb][32] (−128 · Σ w over the block). Rows past the end of the weight are zero.
struct Panel {
  AlignedVector<int8_t> w;
  AlignedVector<float> dw;
  AlignedVector<int32_t> neg_sum;
};

// Packs 16 weight rows at a time: for each block, one gather per k-step collects the 4 bytes of
// that step from the 16 rows (q4_0: one gather per 4 code bytes, which hold two steps as low and
// high nibbles), one gather the 16 scales. Rows past the weight's end are masked off (zeros).
template <bool kQ8>
BF_TARGET_AVX512 void pack_half(const Problem& p, int64_t j0, int rows, int64_t nb, int half, Panel& panel) {
  constexpr int64_t bpb = kQ8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
  const __mmask16 valid = rows >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << rows) - 1);
  alignas(64) int32_t offsets[16];  // byte offset of each row from the first (< 2³¹: kGemmMaxRowBytes)
  for (int r = 0; r < 16; ++r) offsets[r] = static_cast<int32_t>(r < rows ? r * p.w_row_bytes : 0);
  const __m512i row_at = _mm512_load_si512(offsets);
  const __m512i nibble = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8), ones = _mm512_set1_epi8(1);
  const std::byte* blk = rows > 0 ? p.row(j0) : p.w;  // no rows: every gather is masked off
  for (int64_t b = 0; b < nb; ++b, blk += bpb) {
    auto* w = reinterpret_cast<int32_t*>(panel.w.data()) + b * 8 * kPanel + half * 16;
    __m512i steps[8];  // [16 rows × 4 signed bytes] per k-step
    if constexpr (kQ8) {
      for (int s = 0; s < 8; ++s)
        steps[s] = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, row_at, blk + 2 + 4 * s, 1);
    } else {
      for (int s = 0; s < 4; ++s) {
        const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, row_at, blk + 2 + 4 * s, 1);
        steps[s] = _mm512_sub_epi8(_mm512_and_si512(v, nibble), eight);
        steps[s + 4] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), nibble), eight);
        // Masked-off rows must stay zero (not −8): their scale is zero, but keep Σ w honest.
        steps[s] = _mm512_maskz_mov_epi32(valid, steps[s]);
        steps[s + 4] = _mm512_maskz_mov_epi32(valid, steps[s + 4]);
      }
    }
    __m512i sum = _mm512_setzero_si512();
    for (int s = 0; s < 8; ++s) {
      _mm512_storeu_si512(w + s * kPanel, steps[s]);
      sum = _mm512_dpbusd_epi32(sum, ones, steps[s]);  // Σ w per row
    }
    _mm512_storeu_si512(panel.neg_sum.data() + b * kPanel + half * 16, _mm512_mullo_epi32(sum, _mm512_set1_epi32(-128)));
    const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, row_at, blk, 1);  // f16 + 2 bytes
    _mm512_storeu_ps(panel.dw.data() + b * kPanel + half * 16, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
  }
}

template <bool kQ8>
BF_TARGET_AVX512 void pack_panel(const Problem& p, int64_t j0, int64_t nb, Panel& panel) {
  panel.w.resize(static_cast<size_t>(nb * 8 * kPanel * 4));
  panel.dw.resize(static_cast<size_t>(nb * kPanel));
  panel.neg_sum.resize(static_cast<size_t>(nb * kPanel));
  const int nr = static_cast<int>(std::min<int64_t>(kPanel, p.n - j0));
  for (int half = 0; half < 2; ++half)
    pack_half<kQ8>(p, j0 + 16 * half, std::clamp(nr - 16 * half, 0, 16), nb, half, panel);
}

// y[i0 .. i0+R, j0 .. j0+nr] for R ≤ kTileRows activation rows against one packed panel.
template <int R>
BF_TARGET_AVX512 void tile(const Problem& p, const QuantizedActs& a, int64_t i0, int64_t j0, const Panel& panel) {
  const int64_t nb = a.nb;
  const auto* xq = reinterpret_cast<const uint8_t*>(a.q_row(i0));
  const int64_t ldq = a.nb_padded * 32;
  const float* dx = a.dx_row(i0);
  const int64_t lddx = a.nb_padded;
  __m512 f[R][2];
  for (int r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  const int8_t* w = panel.w.data();
  for (int64_t b = 0; b < nb; ++b, w += 8 * kPanel * 4) {
    __m512i acc[R][2];
    const __m512i ns0 = _mm512_loadu_si512(panel.neg_sum.data() + b * kPanel);
    const __m512i ns1 = _mm512_loadu_si512(panel.neg_sum.data() + b * kPanel + 16);
    for (int r = 0; r < R; ++r) acc[r][0] = ns0, acc[r][1] = ns1;
    for (int s = 0; s < 8; ++s) {
      const __m512i w0 = _mm512_loadu_si512(w + s * 128), w1 = _mm512_loadu_si512(w + s * 128 + 64);
      for (int r = 0; r < R; ++r) {
        int32_t x4;
        std::memcpy(&x4, xq + r * ldq + b * 32 + 4 * s, 4);
        const __m512i xb = _mm512_set1_epi32(x4);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xb, w0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xb, w1);
      }
    }
    const __m512 dw0 = _mm512_loadu_ps(panel.dw.data() + b * kPanel);
    const __m512 dw1 = _mm512_loadu_ps(panel.dw.data() + b * kPanel + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 d = _mm512_set1_ps(dx[r * lddx + b]);
      f[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][0]), dw0), d, f[r][0]);
      f[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][1]), dw1), d, f[r][1]);
    }
  }
  const int64_t nr = std::min<int64_t>(kPanel, p.n - j0);
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
  const __m512 b0 = p.bias ? _mm512_maskz_loadu_ps(m0, p.bias + j0) : _mm512_setzero_ps();
  const __m512 b1 = p.bias ? _mm512_maskz_loadu_ps(m1, p.bias + j0 + 16) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) {
    float* y = p.y + (i0 + r) * p.ldy + j0;
    _mm512_mask_storeu_ps(y, m0, p.bias ? _mm512_add_ps(f[r][0], b0) : f[r][0]);
    _mm512_mask_storeu_ps(y + 16, m1, p.bias ? _mm512_add_ps(f[r][1], b1) : f[r][1]);
  }
}

using TileFn = void (*)(const Problem&, const QuantizedActs&, int64_t, int64_t, const Panel&);
constexpr TileFn kTiles[kTileRows] = {tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

}  // namespace

void qgemm_avx512(const CpuContext& ctx, const Problem& p, const QuantizedActs& acts) {
  BF_CHECK(ctx.isa == Isa::kAvx512 && acts.layout == QLayout::kU8, "qgemm_avx512 on ", isa_name(ctx.isa));
  const bool q8 = p.wtype == DType::kQ8_0;
  const int64_t panels = (p.n + kPanel - 1) / kPanel;
  ctx.pool->parallel_for(panels, 1, [&](int64_t pb, int64_t pe) {
    thread_local Panel panel;  // per pool thread, kept between calls: ~1.3 KiB per block of k
    for (int64_t pi = pb; pi < pe; ++pi) {
      const int64_t j0 = pi * kPanel;
      if (q8)
        pack_panel<true>(p, j0, acts.nb, panel);
      else
        pack_panel<false>(p, j0, acts.nb, panel);
      for (int64_t i0 = 0; i0 < p.m; i0 += kTileRows)
        kTiles[std::min<int64_t>(kTileRows, p.m - i0) - 1](p, acts, i0, j0, panel);
    }
  });
}

}  // namespace bf::cpu::lin
