// q8_0 / q4_0 weights repacked once at load time (Backend::pack_linear_weight) and multiplied by
// int8 activations with one micro-kernel for every number of activation rows m: decode (m = 1),
// a decode batch and prefill differ only in how many rows a tile holds, and every output element
// is computed by the same operations in the same order. A row of y therefore has the same bits
// whatever m is and whatever the other rows of x are (the continuous-batching scheduler relies on
// it: a request gives the same tokens alone and in a batch). The natural-layout kernels
// (linear_gemv_int8.cc for m ≤ 8, linear_gemm_int8.cc above) sum in different orders and do not
// have that property.
//
// Layout (PackedLinear): the n output rows in groups of 16 (the last zero-padded), each group a
// contiguous run over k, blocks of 32 in pairs (2p, 2p + 1):
//   [scales of block 2p: 16 × f16][scales of block 2p + 1: 16 × f16]      64 bytes
//   [codes of block 2p][codes of block 2p + 1]                           2 × 256 (q4_0) / 512 (q8_0)
// Codes of one block are vectors of 64 bytes, each 16 rows × one dword, ready for vpdpbusd:
//   q8_0: 8 vectors; dword s of row r = w[r][4s .. 4s + 3] + 128 (unsigned bytes)
//   q4_0: 4 vectors; dword s of row r = code bytes 4s .. 4s + 3 of the row's block: low nibbles are
//         values 4s .. 4s + 3, high nibbles 16 + 4s .. 16 + 4s + 3 (unsigned, value = nibble − 8)
// The same bytes as the natural blocks (544 / 288 per 16 rows and block), so a GEMV streams as many
// bytes as before. Scales of two blocks share one 64-byte line so every code vector is 64-byte
// aligned (a 64-byte load across two lines costs two; linear_internal.h measured 15 % of a GEMV).
//
// Per output element y[i, j]: acc = 0; for each block b in k order:
//   s = Σ over the block's 32 values of (stored code) · x_q   (int32, exact in any order)
//   s −= correction (AVX-512: 128 · Σ x_q for q8_0, 8 · Σ x_q for q4_0; none where the ISA
//        multiplies signed values)
//   acc = fma(float(s), dw_b · dx_b, acc)   (dw_b · dx_b rounded once, one rounding in the fma)
// then y = acc (+ bias). Every ISA follows that recipe element by element (the integer sums are
// exact, so how a kernel splits them does not matter), which also makes AVX-512, AVX2 and scalar
// agree bit for bit.
//
// Activations: quantize_acts in QLayout::kNatural, with corr_mult negative so each block's int32
// sum starts at the correction (one broadcast, no subtraction).
//
// Tiles: R ≤ 6 activation rows × 2 groups (32 features) on AVX-512, R ≤ 3 × 1 group on AVX2,
// 1 × 1 scalar; m is cut into ⌈m / R⌉ tiles of nearly equal size, each running over all of k, and
// the groups go over the pool in chunks of whole tile widths. The first row tile of a group pair
// prefetches kPrefetchBytes ahead in both groups' runs (q4_0 GEMV 4096²: 0.46–0.51 ms with it,
// 0.49–0.57 ms without; 4 KiB as good as 8, 16 and 32 KiB worse; one group at a time no better).
// A GEMV (m = 1) on AVX-512 takes 4 groups per tile, 4 streams per thread: in runs alternating
// with 2 groups in one process (40 rounds over ≥ 200 MB of copies), median time −3 to −7 % at
// 4096², 11008 × 4096 and 4096 × 11008, q4_0 and q8_0 alike.
// Measured, 2 threads (bench group "linear", quiet runs of a 16-core Xeon host restricted to 2
// cores; its read bandwidth 25.8–27.6 GB/s): GEMV m = 1 at 4096² and 4096 × 11008 streams q8_0
// at 20.7–26.6 GB/s and q4_0 at 19.7–25.0 GB/s (the natural layout: 17.9–23.6 and 18.9–21.7).
#include <immintrin.h>

#include <cmath>
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

constexpr int64_t kGroup = PackedLinear::kGroupRows;

int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

struct Tile {  // what one micro-kernel call computes
  const Problem* p;
  const PackedLinear* w;
  const QuantizedActs* a;
  int64_t i0;  // first activation row
  int64_t g0;  // first group (output features 16·g0 …)
  bool prefetch;
  std::byte* scratch;  // AVX-512 q4_0: the unpacked codes of groups g0 … (Codes::kQ4Keep / kQ4Kept)
};

using TileFn = void (*)(const Tile& t);

// Writes one group's 16 results of row i (lanes past n are not stored).
template <typename F>
void store_group(const Tile& t, int64_t i, int64_t g, F&& value) {
  const Problem& p = *t.p;
  const int64_t j0 = g * kGroup, nr = std::min(kGroup, p.n - j0);
  float* y = p.y + i * p.ldy + j0;
  for (int64_t l = 0; l < nr; ++l) y[l] = p.bias ? value(l) + p.bias[j0 + l] : value(l);
}

// ---- scalar ----------------------------------------------------------------------------------

// R = 1 activation row, one group: the other ISAs' recipe with plain loops. std::fma is one
// rounding (glibc uses the FMA instruction where the CPU has it, software otherwise).
template <bool kQ8>
void tile_scalar(const Tile& t) {
  const PackedLinear& w = *t.w;
  const QuantizedActs& a = *t.a;
  const std::byte* group = w.group(t.g0);
  const int8_t* xq = a.q_row(t.i0);
  const float* dx = a.dx_row(t.i0);
  const int32_t* corr = a.corr_row(t.i0);
  float acc[kGroup] = {};
  for (int64_t b = 0; b < w.nb; ++b) {
    const std::byte* scales = w.scales(group, b);
    const auto* codes = reinterpret_cast<const uint8_t*>(w.codes(group, b));
    const int8_t* x = xq + b * 32;
    for (int64_t r = 0; r < kGroup; ++r) {
      int32_t s = corr[b];
      if constexpr (kQ8) {
        for (int v = 0; v < 8; ++v)
          for (int e = 0; e < 4; ++e) s += (codes[64 * v + 4 * r + e] - 128) * x[4 * v + e];
      } else {
        for (int v = 0; v < 4; ++v)
          for (int e = 0; e < 4; ++e) {
            const int c = codes[64 * v + 4 * r + e];
            s += ((c & 0xF) - 8) * x[4 * v + e] + ((c >> 4) - 8) * x[16 + 4 * v + e];
          }
      }
      uint16_t h;
      std::memcpy(&h, scales + 2 * r, 2);
      acc[r] = std::fma(static_cast<float>(s), f16_to_f32(h) * dx[b], acc[r]);
    }
  }
  store_group(t, t.i0, t.g0, [&](int64_t l) { return acc[l]; });
}

// ---- AVX2 --------------------------------------------------------------------------------------

// R activation rows × one group (two ymm of 8 features). Unsigned × signed bytes by vpmaddubsw,
// whose int16 pair sums saturate at 2¹⁵ (x_q lies in [−127, 127]): q4_0 nibbles (≤ 15) give at
// most 3810 per pair, so the 8 pair sums a lane collects over a block (≤ 30480) add up in int16
// and widen once per block; q8_0 takes |w| (≤ 128) against x carrying w's sign (vpsignb), at most
// 32512 per pair, widened every step.
template <int R, bool kQ8>
BF_TARGET_AVX2 void tile_avx2(const Tile& t) {
  const PackedLinear& w = *t.w;
  const QuantizedActs& a = *t.a;
  const std::byte* group = w.group(t.g0);
  const int8_t* xq[R];
  const float* dx[R];
  const int32_t* corr[R];
  for (int r = 0; r < R; ++r) xq[r] = a.q_row(t.i0 + r), dx[r] = a.dx_row(t.i0 + r), corr[r] = a.corr_row(t.i0 + r);
  const __m256i ones = _mm256_set1_epi16(1), nibble = _mm256_set1_epi8(0x0F);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.nb; ++b) {
    if (t.prefetch && b % 2 == 0)
      for (int64_t l = 0; l < w.pair_bytes; l += 64) prefetch_ahead(w.scales(group, b) + l);
    const auto* sc = reinterpret_cast<const __m128i*>(w.scales(group, b));
    const __m256 dw[2] = {_mm256_cvtph_ps(_mm_load_si128(sc)), _mm256_cvtph_ps(_mm_load_si128(sc + 1))};
    const std::byte* codes = w.codes(group, b);
    __m256i sum[R][2];
    for (int r = 0; r < R; ++r) sum[r][0] = sum[r][1] = _mm256_set1_epi32(corr[r][b]);
    if constexpr (kQ8) {
      for (int v = 0; v < 8; ++v)
        for (int h = 0; h < 2; ++h) {
          const __m256i ws =
              _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(codes + 64 * v + 32 * h)), flip);
          const __m256i aw = _mm256_abs_epi8(ws);
          for (int r = 0; r < R; ++r) {
            const __m256i xs = _mm256_sign_epi8(_mm256_set1_epi32(load_i32(xq[r] + 32 * b + 4 * v)), ws);
            sum[r][h] = _mm256_add_epi32(sum[r][h], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xs), ones));
          }
        }
    } else {
      __m256i s16[R][2];
      for (int r = 0; r < R; ++r) s16[r][0] = s16[r][1] = _mm256_setzero_si256();
      for (int v = 0; v < 4; ++v)
        for (int h = 0; h < 2; ++h) {
          const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + 64 * v + 32 * h));
          const __m256i lo = _mm256_and_si256(c, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble);
          for (int r = 0; r < R; ++r) {
            const __m256i xl = _mm256_set1_epi32(load_i32(xq[r] + 32 * b + 4 * v));
            const __m256i xh = _mm256_set1_epi32(load_i32(xq[r] + 32 * b + 16 + 4 * v));
            s16[r][h] = _mm256_add_epi16(s16[r][h],
                                         _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh)));
          }
        }
      for (int r = 0; r < R; ++r)
        for (int h = 0; h < 2; ++h) sum[r][h] = _mm256_add_epi32(sum[r][h], _mm256_madd_epi16(s16[r][h], ones));
    }
    for (int r = 0; r < R; ++r) {
      const __m256 d = _mm256_set1_ps(dx[r][b]);
      for (int h = 0; h < 2; ++h)
        acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[r][h]), _mm256_mul_ps(dw[h], d), acc[r][h]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float out[kGroup];
    _mm256_store_ps(out, acc[r][0]);
    _mm256_store_ps(out + 8, acc[r][1]);
    store_group(t, t.i0 + r, t.g0, [&](int64_t l) { return out[l]; });
  }
}

// ---- AVX-512 VNNI ------------------------------------------------------------------------------

// Where a tile's codes come from. q4_0 nibbles cost an AND, a shift and an AND per code vector
// before vpdpbusd, and every row tile repeated them: 25 % of a 4096² m = 128 GEMM (6.85 against
// the natural-layout GEMM's 5.48 ms, quiet 2-thread runs). So the first row tile of a group pair
// keeps the unpacked nibbles (scratch: per block and group 8 vectors, low nibbles of dwords 0–3
// then high ones, so vector u meets activation dword u as q8_0's do) and the other row tiles read
// those (6.81 against 6.98 ms then). The integer sums are the same, so the bits are.
enum class Codes {
  kQ8,      // packed q8_0 codes
  kQ4,      // packed q4_0 codes, unpacked in registers
  kQ4Keep,  // the same, also written to the scratch
  kQ4Kept,  // the scratch written by a kQ4Keep tile of the same groups
};

// R activation rows × G groups (16 features each, one zmm). Per block and step: one 64-byte load
// of codes per group, one dword of activations broadcast per row, R·G vpdpbusd (q4_0 from the
// packed codes: the low and high nibbles, two per step). The block's sums start at the
// correction; the fold is one conversion, one multiply (dw · dx) and one FMA per (row, group).
template <int R, int G, Codes kCodes>
BF_TARGET_AVX512 void tile_avx512(const Tile& t) {
  constexpr bool kUnpack = kCodes == Codes::kQ4 || kCodes == Codes::kQ4Keep;
  constexpr int64_t kVectors = kUnpack ? 4 : 8;
  const PackedLinear& w = *t.w;
  const QuantizedActs& a = *t.a;
  const std::byte* group[G];
  for (int g = 0; g < G; ++g) group[g] = w.group(t.g0 + g);
  const int8_t* xq[R];
  const float* dx[R];
  const int32_t* corr[R];
  for (int r = 0; r < R; ++r) xq[r] = a.q_row(t.i0 + r), dx[r] = a.dx_row(t.i0 + r), corr[r] = a.corr_row(t.i0 + r);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  __m512 acc[R][G];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) acc[r][g] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.nb; ++b) {
    if (t.prefetch && b % 2 == 0)
      for (int g = 0; g < G; ++g)
        for (int64_t l = 0; l < w.pair_bytes; l += 64) prefetch_ahead(w.scales(group[g], b) + l);
    __m512 dw[G];
    const std::byte* codes[G];
    std::byte* kept[G];  // this block's scratch vectors of each group
    for (int g = 0; g < G; ++g) {
      dw[g] = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w.scales(group[g], b))));
      kept[g] = t.scratch + (b * G + g) * 512;
      codes[g] = kCodes == Codes::kQ4Kept ? kept[g] : w.codes(group[g], b);
    }
    __m512i sum[R][G];
    for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(corr[r][b]);
      for (int g = 0; g < G; ++g) sum[r][g] = c;
    }
    for (int64_t v = 0; v < kVectors; ++v) {
      for (int g = 0; g < G; ++g) {
        const __m512i c = _mm512_load_si512(codes[g] + 64 * v);
        if constexpr (!kUnpack) {
          for (int r = 0; r < R; ++r)
            sum[r][g] = _mm512_dpbusd_epi32(sum[r][g], c, _mm512_set1_epi32(load_i32(xq[r] + 32 * b + 4 * v)));
        } else {
          const __m512i lo = _mm512_and_si512(c, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), nibble);
          if constexpr (kCodes == Codes::kQ4Keep) {
            _mm512_store_si512(kept[g] + 64 * v, lo);
            _mm512_store_si512(kept[g] + 64 * (v + 4), hi);
          }
          for (int r = 0; r < R; ++r) {
            sum[r][g] = _mm512_dpbusd_epi32(sum[r][g], lo, _mm512_set1_epi32(load_i32(xq[r] + 32 * b + 4 * v)));
            sum[r][g] = _mm512_dpbusd_epi32(sum[r][g], hi, _mm512_set1_epi32(load_i32(xq[r] + 32 * b + 16 + 4 * v)));
          }
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m512 d = _mm512_set1_ps(dx[r][b]);
      for (int g = 0; g < G; ++g)
        acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r][g]), _mm512_mul_ps(dw[g], d), acc[r][g]);
    }
  }
  // Masked vector stores (+ bias, the same addition as the scalar store): with SmolLM2's k = 576 a
  // 6-row tile is only 18 blocks (1728 vpdpbusd), against 192 stores element by element.
  const Problem& p = *t.p;
  for (int g = 0; g < G; ++g) {
    const int64_t j0 = (t.g0 + g) * kGroup, nr = std::min(kGroup, p.n - j0);
    const __mmask16 valid = static_cast<__mmask16>((1u << nr) - 1);
    const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(valid, p.bias + j0) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      float* y = p.y + (t.i0 + r) * p.ldy + j0;
      _mm512_mask_storeu_ps(y, valid, p.bias ? _mm512_add_ps(acc[r][g], bias) : acc[r][g]);
    }
  }
}

// ---- AMX-INT8 ----------------------------------------------------------------------------------

// 16 activation rows × one group per call, on the tile unit. The group's codes are first unpacked
// once (unpack_signed) into signed bytes, per block 8 rows of 64 bytes: row u holds dword u of the
// block's 16 output rows — the B operand of TDPBSSD as it is, the packed layout's vectors with the
// q8_0 offset removed and q4_0's nibbles split (low nibbles of dwords 0–3, then high) and
// re-centred. The A operand is the 16 activation rows' 32 bytes of the block, loaded in place with
// the activations' row stride; TDPBSSD gives the 16 × 16 exact int32 block sums Σ w · x_q, the
// very integers the VNNI tiles reach through the correction. Those go through memory (a tile has
// no register path to zmm) and fold as everywhere: acc = fma(float(s), dw · dx, acc), so AMX rows
// have the bits of every other ISA's. Two blocks per step on alternating tile sets (tile_amx).
//
// The fold is the price: per block and 16 × 16 outputs, 16 loads, conversions, multiplies and
// FMAs, which on this project's Xeon (KVM, 2 cores) barely overlap the tile instructions — a
// micro-benchmark of one block's work ran 3.1 ns for the A load, 3.7 ns for the B load (from L2),
// 5.6 ns for the store, 8.4 ns for the fold, and 20–24 ns for all of it in any order tried. The
// fold's 16 accumulators must stay in registers: with them spilled (a rolled loop) the 512-token
// prefill ran 9 % slower. So the tile unit wins only where the
// VNNI tiles' broadcasts and nibble unpacking cost more than the fold: measured (2 threads) q4_0
// 4096² m = 128 in 4.7–4.8 ms against 5.6–5.8 ms, SmolLM2-135M's 512-token prefill 2–5 % faster,
// but its 16-sequence decode batch 10 % slower (the codes are unpacked in a pass of their own for
// only one row block). Hence kAmxMinRows (linear_internal.h).

struct alignas(64) AmxConfig {  // the LDTILECFG operand, palette 1
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles: 0, 1 activations (16 rows × 32 bytes) of blocks b, b + 1; 2, 3 codes (8 × 64); 4, 5 and
// 6, 7 sums (16 × 16 int32) of alternate steps.
BF_TARGET_AMX void amx_configure() {
  AmxConfig c;
  for (int t : {0, 1}) c.rows[t] = 16, c.colsb[t] = 32;
  for (int t : {2, 3}) c.rows[t] = 8, c.colsb[t] = 64;
  for (int t : {4, 5, 6, 7}) c.rows[t] = 16, c.colsb[t] = 64;
  // Not _tile_loadconfig: GCC 12's version names only the first 8 bytes of its operand as read,
  // and the stores of the rest are then dropped as dead.
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

BF_TARGET_AMX void amx_release() { _tile_release(); }

// One group's codes as signed bytes, nb × 512 bytes (layout above).
template <bool kQ8>
BF_TARGET_AMX void unpack_signed(const PackedLinear& w, const std::byte* group, std::byte* out) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), nibble = _mm512_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int64_t b = 0; b < w.nb; ++b) {
    const std::byte* codes = w.codes(group, b);
    std::byte* dst = out + b * 512;
    if (b % 2 == 0)  // the only pass that streams the weight from memory: keep misses in flight
      for (int64_t l = 0; l < w.pair_bytes; l += 64) prefetch_ahead(w.scales(group, b) + l);
    if constexpr (kQ8) {
      for (int v = 0; v < 8; ++v)
        _mm512_store_si512(dst + 64 * v, _mm512_xor_si512(_mm512_load_si512(codes + 64 * v), flip));
    } else {
      for (int v = 0; v < 4; ++v) {
        const __m512i c = _mm512_load_si512(codes + 64 * v);
        _mm512_store_si512(dst + 64 * v, _mm512_sub_epi8(_mm512_and_si512(c, nibble), eight));
        _mm512_store_si512(dst + 64 * (v + 4),
                           _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(c, 4), nibble), eight));
      }
    }
  }
}

// acc[r] = fma(float(s[r]), dw · dx[r], acc[r]) for one block's 16 × 16 sums s.
BF_TARGET_AMX inline __attribute__((always_inline)) void fold_block(__m512 (&acc)[16], const int32_t* s,
                                                                    const std::byte* scales, const float* dx,
                                                                    int64_t ldd) {
  const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales)));
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r)
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(s + 16 * r)),
                             _mm512_mul_ps(dw, _mm512_set1_ps(dx[r * ldd])), acc[r]);
}

// Rows t.i0 … t.i0 + 15 of group t.g0, from the signed codes `codes` (unpack_signed). The caller
// has configured the tiles.
BF_TARGET_AMX void tile_amx(const Tile& t, const std::byte* codes) {
  const PackedLinear& w = *t.w;
  const QuantizedActs& a = *t.a;
  const std::byte* group = w.group(t.g0);
  const int8_t* x = a.q_row(t.i0);
  const float* dx = a.dx_row(t.i0);
  const int64_t lda = a.nb_padded * 32, ldd = a.nb_padded;
  alignas(64) int32_t sums[2][2][16 * 16];  // [step parity][block of the step]
  __m512 acc[16];                           // every loop over it unrolled, so it is 16 registers and never memory
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  // Step s multiplies blocks 2s, 2s + 1 into tiles 4, 5 (s even) or 6, 7 (s odd). Iteration s
  // folds step s − 2, issues step s's products and only then stores step s − 1's, whose products
  // have had a whole step to finish: the stores wait on nothing, and no tile is reused before the
  // store that reads it. (Against the order products, their own stores, then the previous fold: 9–13 %
  // faster in a loop over one group's blocks.) An odd last block runs alone after the pairs.
  const int64_t steps = w.nb / 2;
  for (int64_t st = 0; st <= steps + 1; ++st) {
    if (st >= 2) {
      const int64_t b = 2 * (st - 2);
      fold_block(acc, sums[st % 2][0], w.scales(group, b), dx + b, ldd);
      fold_block(acc, sums[st % 2][1], w.scales(group, b + 1), dx + b + 1, ldd);
    }
    if (st < steps) {
      const int64_t b = 2 * st;
      _tile_loadd(0, x + 32 * b, lda);
      _tile_loadd(2, codes + 512 * b, 64);
      _tile_loadd(1, x + 32 * (b + 1), lda);
      _tile_loadd(3, codes + 512 * (b + 1), 64);
      if (st % 2 == 0) {
        _tile_zero(4);
        _tile_dpbssd(4, 0, 2);
        _tile_zero(5);
        _tile_dpbssd(5, 1, 3);
      } else {
        _tile_zero(6);
        _tile_dpbssd(6, 0, 2);
        _tile_zero(7);
        _tile_dpbssd(7, 1, 3);
      }
    }
    if (st >= 1 && st <= steps) {
      int32_t* out = sums[(st - 1) % 2][0];
      if ((st - 1) % 2 == 0) {
        _tile_stored(4, out, 64);
        _tile_stored(5, out + 256, 64);
      } else {
        _tile_stored(6, out, 64);
        _tile_stored(7, out + 256, 64);
      }
    }
  }
  if (w.nb % 2 != 0) {
    const int64_t b = w.nb - 1;
    _tile_loadd(0, x + 32 * b, lda);
    _tile_loadd(2, codes + 512 * b, 64);
    _tile_zero(4);
    _tile_dpbssd(4, 0, 2);
    _tile_stored(4, sums[0][0], 64);
    fold_block(acc, sums[0][0], w.scales(group, b), dx + b, ldd);
  }
  const Problem& p = *t.p;
  const int64_t j0 = t.g0 * kGroup, nr = std::min(kGroup, p.n - j0);
  const __mmask16 valid = static_cast<__mmask16>((1u << nr) - 1);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(valid, p.bias + j0) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) {
    float* y = p.y + (t.i0 + r) * p.ldy + j0;
    _mm512_mask_storeu_ps(y, valid, p.bias ? _mm512_add_ps(acc[r], bias) : acc[r]);
  }
}

// Rows [r_begin, r_end) of groups [g_begin, g_end) (both row bounds multiples of 16). The first
// 16-row tile unpacks each group's codes as it reaches it (the weight's one pass from memory,
// overlapped with that tile's products); every later 16-row tile of activations (in L1) meets all
// the groups in turn, their unpacked codes streaming from L2 in order.
void amx_rows(const Problem& p, const PackedLinear& w, const QuantizedActs& acts, int64_t r_begin, int64_t r_end,
              int64_t g_begin, int64_t g_end) {
  thread_local AlignedVector<std::byte> codes;  // per pool thread, kept between calls
  const int64_t group_codes = w.nb * 512;
  codes.resize(static_cast<size_t>((g_end - g_begin) * group_codes));
  auto group_codes_of = [&](int64_t g) { return codes.data() + (g - g_begin) * group_codes; };
  amx_configure();
  Tile t{&p, &w, &acts, r_begin, 0, false, nullptr};
  for (t.g0 = g_begin; t.g0 < g_end; ++t.g0) {
    if (w.dtype == DType::kQ8_0)
      unpack_signed<true>(w, w.group(t.g0), group_codes_of(t.g0));
    else
      unpack_signed<false>(w, w.group(t.g0), group_codes_of(t.g0));
    tile_amx(t, group_codes_of(t.g0));
  }
  for (t.i0 = r_begin + 16; t.i0 < r_end; t.i0 += 16)
    for (t.g0 = g_begin; t.g0 < g_end; ++t.g0) tile_amx(t, group_codes_of(t.g0));
  amx_release();
}

// Rows [0, m16) on the tile unit, over the pool in items of (rows, groups). Rows are cut into as
// many parts as there are threads, down to kAmxPartRows each, and the groups only as far as the
// threads still need items or a part's unpacked codes outgrow kAmxCodesBytes (they are re-read
// from L2 by every row tile). Cutting rows first keeps each thread on its own share of the
// activations instead of every thread reading all of them. Measured on SmolLM2-135M's q4_0
// prefill shapes (m = 512, 2 threads, medians of 15 alternating rounds), items of whole groups
// only (the GEMV's split) against this: q/k/v 960 × 576 641 → 524 µs, output 576 × 576 411 → 363,
// down 576 × 1536 1004 → 925, gate/up 3072 × 576 (two group parts) 1633 → 1677.
constexpr int64_t kAmxPartRows = 128;
constexpr int64_t kAmxCodesBytes = int64_t{1} << 20;

void amx_linear(const CpuContext& ctx, const Problem& p, const PackedLinear& w, const QuantizedActs& acts,
                int64_t m16) {
  const int64_t threads = ctx.pool->size(), row_tiles = m16 / 16;
  const int64_t row_parts = std::clamp<int64_t>(m16 / kAmxPartRows, 1, threads);
  const int64_t group_codes = w.nb * 512;
  const int64_t group_parts = std::min(
      w.groups,
      std::max((threads + row_parts - 1) / row_parts, (w.groups * group_codes + kAmxCodesBytes - 1) / kAmxCodesBytes));
  ctx.pool->parallel_for(
      row_parts * group_parts, 1,
      [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t r = i / group_parts, g = i % group_parts;
          amx_rows(p, w, acts, 16 * (r * row_tiles / row_parts), 16 * ((r + 1) * row_tiles / row_parts),
                   g * w.groups / group_parts, (g + 1) * w.groups / group_parts);
        }
      },
      Schedule::kStatic);
}

// ---- dispatch ----------------------------------------------------------------------------------

// The kernels of one ISA and weight type, [R − 1][G − 1] for tiles of R ≤ rows activation rows and
// G ≤ groups groups: `alone` when one row tile covers m, else `first` for the first row tile of
// the groups and `rest` for the others (AVX-512 q4_0: the first keeps the unpacked codes, the
// others read them).
struct Kernels {
  int rows = 1, groups = 1;
  int gemv_groups = 1;  // groups per tile when m = 1
  TileFn gemv[4] = {};  // m = 1, [G − 1]
  TileFn alone[6][2] = {};
  TileFn first[6][2] = {};
  TileFn rest[6][2] = {};
  int corr_mult = 0;
  bool scratch = false;
};

template <int R, Codes kAlone, Codes kFirst, Codes kRest>
void set_avx512(Kernels& k) {
  k.alone[R - 1][0] = tile_avx512<R, 1, kAlone>, k.alone[R - 1][1] = tile_avx512<R, 2, kAlone>;
  k.first[R - 1][0] = tile_avx512<R, 1, kFirst>, k.first[R - 1][1] = tile_avx512<R, 2, kFirst>;
  k.rest[R - 1][0] = tile_avx512<R, 1, kRest>, k.rest[R - 1][1] = tile_avx512<R, 2, kRest>;
}

template <bool kQ8>
Kernels avx512_kernels() {
  constexpr Codes kAlone = kQ8 ? Codes::kQ8 : Codes::kQ4;
  constexpr Codes kFirst = kQ8 ? Codes::kQ8 : Codes::kQ4Keep, kRest = kQ8 ? Codes::kQ8 : Codes::kQ4Kept;
  Kernels k;
  k.rows = 6;
  k.groups = 2;
  k.gemv_groups = 4;
  k.gemv[0] = tile_avx512<1, 1, kAlone>, k.gemv[1] = tile_avx512<1, 2, kAlone>;
  k.gemv[2] = tile_avx512<1, 3, kAlone>, k.gemv[3] = tile_avx512<1, 4, kAlone>;
  k.corr_mult = kQ8 ? -128 : -8;
  k.scratch = !kQ8;
  set_avx512<1, kAlone, kFirst, kRest>(k);
  set_avx512<2, kAlone, kFirst, kRest>(k);
  set_avx512<3, kAlone, kFirst, kRest>(k);
  set_avx512<4, kAlone, kFirst, kRest>(k);
  set_avx512<5, kAlone, kFirst, kRest>(k);
  set_avx512<6, kAlone, kFirst, kRest>(k);
  return k;
}

template <bool kQ8>
Kernels avx2_kernels() {
  Kernels k;
  k.rows = 3;
  k.corr_mult = kQ8 ? 0 : -8;
  k.alone[0][0] = k.first[0][0] = k.rest[0][0] = tile_avx2<1, kQ8>;
  k.alone[1][0] = k.first[1][0] = k.rest[1][0] = tile_avx2<2, kQ8>;
  k.alone[2][0] = k.first[2][0] = k.rest[2][0] = tile_avx2<3, kQ8>;
  return k;
}

template <bool kQ8>
Kernels scalar_kernels() {
  Kernels k;
  k.alone[0][0] = k.first[0][0] = k.rest[0][0] = tile_scalar<kQ8>;
  return k;
}

const Kernels& kernels_for(Isa isa, bool q8) {
  static const Kernels avx512[2] = {avx512_kernels<false>(), avx512_kernels<true>()};
  static const Kernels avx2[2] = {avx2_kernels<false>(), avx2_kernels<true>()};
  static const Kernels scalar[2] = {scalar_kernels<false>(), scalar_kernels<true>()};
  switch (isa) {
    case Isa::kAvx512: return avx512[q8];
    case Isa::kAvx2: return avx2[q8];
    case Isa::kScalar: break;
  }
  return scalar[q8];
}

}  // namespace

PackedLinear::PackedLinear(DType type, int64_t rows, int64_t cols)
    : dtype(type),
      n(rows),
      k(cols),
      nb(cols / 32),
      groups((rows + kGroupRows - 1) / kGroupRows),
      code_bytes(type == DType::kQ8_0 ? 512 : 256),
      pair_bytes(64 + 2 * code_bytes),
      group_bytes((nb + 1) / 2 * pair_bytes),
      data(static_cast<size_t>(groups * group_bytes)) {}

std::shared_ptr<const PackedLinear> pack_q8_q4(const CpuContext& ctx, const ConstTensorView& weight) {
  const DType t = weight.dtype;
  BF_CHECK(t == DType::kQ8_0 || t == DType::kQ4_0, "pack_q8_q4 of ", dtype_name(t));
  const bool q8 = t == DType::kQ8_0;
  auto packed = std::make_shared<PackedLinear>(t, weight.shape[0], weight.shape[1]);
  PackedLinear& w = *packed;
  const int64_t block_bytes = dtype_info(t).block_bytes;
  const int64_t row_bytes = weight.strides[0] * block_bytes;
  ctx.pool->parallel_for(w.groups, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      std::byte* group = w.group(g);
      const int64_t rows = std::min(kGroup, w.n - g * kGroup);  // the rest stays zero
      for (int64_t b = 0; b < w.nb; ++b) {
        std::byte* scales = group + w.scales_offset(b);
        auto* codes = reinterpret_cast<uint8_t*>(group + w.codes_offset(b));
        for (int64_t r = 0; r < rows; ++r) {
          const std::byte* blk = weight.data + (g * kGroup + r) * row_bytes + b * block_bytes;
          std::memcpy(scales + 2 * r, blk, 2);
          const auto* q = reinterpret_cast<const uint8_t*>(blk + 2);
          for (int v = 0; v < (q8 ? 8 : 4); ++v)
            for (int e = 0; e < 4; ++e)
              codes[64 * v + 4 * r + e] = q8 ? static_cast<uint8_t>(q[4 * v + e] ^ 0x80) : q[4 * v + e];
        }
      }
    }
  });
  return packed;
}

void PackedLinear::natural_row(int64_t j, std::byte* out) const {
  const bool q8 = dtype == DType::kQ8_0;
  const int64_t block_bytes = dtype_info(dtype).block_bytes;
  const std::byte* g = group(j / kGroupRows);
  const int64_t r = j % kGroupRows;
  for (int64_t b = 0; b < nb; ++b) {
    std::byte* blk = out + b * block_bytes;
    std::memcpy(blk, scales(g, b) + 2 * r, 2);
    const auto* c = reinterpret_cast<const uint8_t*>(codes(g, b));
    auto* q = reinterpret_cast<uint8_t*>(blk + 2);
    for (int v = 0; v < (q8 ? 8 : 4); ++v)
      for (int e = 0; e < 4; ++e)
        q[4 * v + e] = q8 ? static_cast<uint8_t>(c[64 * v + 4 * r + e] ^ 0x80) : c[64 * v + 4 * r + e];
  }
}

QLayoutSpec packed_layout(Isa isa, DType wtype) {
  return {QLayout::kNatural, kernels_for(isa, wtype == DType::kQ8_0).corr_mult};
}

void packed_linear(const CpuContext& ctx, const Problem& p, const PackedLinear& w, const QuantizedActs& acts) {
  BF_CHECK(acts.layout == QLayout::kNatural && w.n == p.n && w.k == p.k && w.dtype == p.wtype, "packed_linear");
  const Kernels& kern = kernels_for(ctx.isa, w.dtype == DType::kQ8_0);
  // With AMX and m ≥ kAmxMinRows the rows in whole blocks of 16 go to the tile unit, the rest to
  // the vector tiles.
  const int64_t m_amx = ctx.amx && p.m >= kAmxMinRows ? p.m / 16 * 16 : 0;
  // Rows in ⌈m / kern.rows⌉ tiles of nearly equal size (m = 8 on AVX-512: 4 + 4, not 6 + 2).
  const int64_t row_tiles = (p.m - m_amx + kern.rows - 1) / kern.rows;
  if (m_amx > 0) amx_linear(ctx, p, w, acts, m_amx);
  if (row_tiles == 0) return;
  // Chunks of whole tiles (an odd chunk would run every last group as a one-group tile), as long
  // as stream_grain asks, for every m.
  const bool gemv = p.m == 1 && kern.gemv[0] != nullptr;
  const int64_t tile_groups = gemv ? kern.gemv_groups : kern.groups;
  int64_t grain = stream_grain(w.group_bytes, w.groups, ctx.pool->size(), tile_groups);
  grain = (grain + tile_groups - 1) / tile_groups * tile_groups;
  ctx.pool->parallel_for(w.groups, grain, [&](int64_t g_begin, int64_t g_end) {
    thread_local AlignedVector<std::byte> scratch;  // per pool thread, kept between calls
    if (kern.scratch && row_tiles > 1) scratch.resize(static_cast<size_t>(w.nb * kern.groups * 512));
    Tile t{&p, &w, &acts, 0, 0, false, scratch.data()};
    for (t.g0 = g_begin; t.g0 < g_end; t.g0 += tile_groups) {
      const int64_t g = std::min<int64_t>(tile_groups, g_end - t.g0);
      if (gemv) {
        t.prefetch = true;
        kern.gemv[g - 1](t);
        continue;
      }
      t.i0 = m_amx;
      for (int64_t tile = 0; tile < row_tiles; ++tile) {
        const int64_t rows = (p.m - t.i0) / (row_tiles - tile);
        t.prefetch = tile == 0;  // the first row tile streams the groups; the others find them in L1/L2
        (row_tiles == 1 ? kern.alone : tile == 0 ? kern.first : kern.rest)[rows - 1][g - 1](t);
        t.i0 += rows;
      }
    }
  });
}

}  // namespace bf::cpu::lin
