// Internals of the CPU linear op, shared by its files:
//   linear.cc            which kernel runs (kAuto policy), supports_op names, dispatch
//   linear_vendor.cc     OpenBLAS sgemm / sgemv, on f32 weights or on f32 rows dequantized per chunk
//   linear_dequant.cc    weight rows (any type) → f32, per ISA
//   linear_quantize.cc   activations → int8 blocks of 32 with f32 scales, per ISA and layout
//   linear_gemv_int8.cc  q8_0 / q4_0 × int8 activations for few rows (decode), per ISA
//   linear_gemm_int8.cc  q8_0 / q4_0 × int8 activations, packed panels, AVX-512 VNNI (prefill)
//   linear_packed.cc     q8_0 / q4_0 repacked at load time × int8 activations, every m, per ISA
//   linear_gemv_float.cc f16 / bf16 / f8_e4m3 / nf4 converted in registers, few rows, AVX-512
//   linear_float.cc      f32 tile kernels over f32 weights or dequantized panels, per ISA
// Every kernel splits the output features (n) across ctx.pool and computes each output element
// wholly inside one chunk, in an order fixed by (m, n, k) alone: results do not depend on the
// number of threads.
#pragma once

#include <algorithm>

#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "backends/cpu/host_memory.h"
#include "backends/cpu/kernels.h"
#include "batch_forge/backends/backend.h"
#include "batch_forge/core/dtype.h"

namespace bf::cpu::lin {

// One validated linear call as raw pointers: y[m, n] = x[m, k] · W[n, k]ᵀ (+ bias[n]).
struct Problem {
  int64_t m = 0, n = 0, k = 0;
  const float* x = nullptr;  // [m, k], rows `ldx` floats apart
  int64_t ldx = 0;
  DType wtype = DType::kF32;
  const std::byte* w = nullptr;  // [n, k] in wtype, rows `w_row_bytes` apart
  int64_t w_row_bytes = 0;
  const float* scale = nullptr;  // [n] f8_e4m3 row scales; null for other types
  const float* bias = nullptr;   // [n] or null
  float* y = nullptr;            // [m, n], rows `ldy` floats apart
  int64_t ldy = 0;

  const std::byte* row(int64_t j) const { return w + j * w_row_bytes; }
  float row_scale(int64_t j) const { return scale ? scale[j] : 1.0f; }
};

// Rows of x up to which the GEMV kernels run (they keep ≤ 4 activation rows in registers and
// re-read the chunk's weights from L1/L2 for each group of 4); above it the GEMM kernels, which
// pack weight panels once and reuse them across every row.
inline constexpr int64_t kGemvMaxRows = 8;

// ---- linear_vendor.cc ----------------------------------------------------------------------
class PackedLinear;
// `packed`: the weight's packed form, read instead of p.w when that is null (a packed-only weight).
void vendor_linear(const CpuContext& ctx, const Problem& p, const PackedLinear* packed = nullptr);

// ---- linear_dequant.cc ---------------------------------------------------------------------
// Elements [k0, k0 + len) of one weight row (`row` points at element 0) as f32 into out[len];
// k0 is a multiple of 64 (every block size divides it) and k0 + len is a multiple of the block
// size or k. f8_e4m3 values are multiplied by `row_scale`, as ops::dequantize_row does.
using DequantFn = void (*)(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out);
void dequant_scalar(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out);
void dequant_avx2(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out);
void dequant_avx512(DType t, const std::byte* row, int64_t k0, int64_t len, float row_scale, float* out);
DequantFn dequant_for(Isa isa);  // picked once per call

// ---- linear_quantize.cc --------------------------------------------------------------------
// Activations quantized to int8 in blocks of 32 along k, one f32 scale per block:
//   x[i, p] ≈ q[i, p] · dx[i, p / 32],  dx = max|x over the block| / 127,  q = rint(x · 127 / max).
// The error per element is at most dx / 2; tests/conformance/linear_cases.cc bounds the result
// with it. Each kernel family reads its own arrangement of the same numbers.
enum class QLayout {
  kNatural,  // q in k order; blocks padded with zeros to a multiple of 4 (scalar, AVX2 GEMV)
  kSplit16,  // steps of 16 blocks, halves of 4 blocks side by side (AVX-512 GEMV, see there)
  kU8,       // q + 128 as u8 in k order, no padding (AVX-512 GEMM)
};

// An allocator aligned to 64 bytes: the kernels read activation blocks and packed panels with
// 64-byte loads, which touch two cache lines each when misaligned (measured: 15 % of a q4_0 GEMV).
template <typename T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <typename U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete (p, std::align_val_t{64}); }
  friend bool operator==(const CacheAligned&, const CacheAligned&) { return true; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

struct QuantizedActs {
  QLayout layout = QLayout::kNatural;
  int64_t m = 0;
  int64_t nb = 0;               // blocks per row: k / 32
  int64_t nb_padded = 0;        // blocks stored per row (zero blocks at the end)
  AlignedVector<int8_t> q;      // [m, nb_padded * 32]
  AlignedVector<float> dx;      // [m, nb_padded]
  AlignedVector<int32_t> corr;  // [m, nb_padded]: corr_mult · Σ q over the block
  const int8_t* q_row(int64_t i) const { return q.data() + i * nb_padded * 32; }
  const float* dx_row(int64_t i) const { return dx.data() + i * nb_padded; }
  const int32_t* corr_row(int64_t i) const { return corr.data() + i * nb_padded; }
};

// Quantizes p.x (k a multiple of 32) into `out`, resizing its buffers. `corr_mult` is what the
// kernel needs subtracted per block: 8 for q4_0 nibbles used as unsigned, 128 for q8_0 weights
// offset to unsigned, 0 when the kernel multiplies signed values directly.
void quantize_acts(const CpuContext& ctx, const Problem& p, QLayout layout, int corr_mult, QuantizedActs& out);

// ---- linear_gemv_int8.cc -------------------------------------------------------------------
// q8_0 / q4_0 weights, any m (rows in groups of ≤ 4); acts from quantize_acts with the layout
// and corr_mult of qgemv_layout().
struct QLayoutSpec {
  QLayout layout;
  int corr_mult;
};
QLayoutSpec qgemv_layout(Isa isa, DType wtype);
void qgemv(const CpuContext& ctx, const Problem& p, const QuantizedActs& acts);

// ---- linear_gemm_int8.cc -------------------------------------------------------------------
// AVX-512 VNNI only; acts in QLayout::kU8 with corr_mult 0. Packing gathers 16 rows with 32-bit
// offsets: weights whose rows lie further apart than kGemmMaxRowBytes take the GEMV kernels.
inline constexpr int64_t kGemmMaxRowBytes = (int64_t{1} << 31) / 16;
void qgemm_avx512(const CpuContext& ctx, const Problem& p, const QuantizedActs& acts);

// ---- linear_packed.cc ------------------------------------------------------------------------
// A q8_0 / q4_0 weight [n, k] rearranged for the packed kernels (the layout is described in
// linear_packed.cc): groups of kGroupRows output rows, each a contiguous run of `group_bytes`.
class PackedLinear final : public PackedWeight {
 public:
  static constexpr int64_t kGroupRows = 16;

  PackedLinear(DType type, int64_t rows, int64_t cols);
  size_t bytes() const override { return data.size(); }

  const std::byte* group(int64_t g) const { return data.data() + g * group_bytes; }
  std::byte* group(int64_t g) { return data.data() + g * group_bytes; }
  // Where block b's 16 f16 scales and its code vectors lie inside a group.
  int64_t scales_offset(int64_t b) const { return (b / 2) * pair_bytes + (b % 2) * 32; }
  int64_t codes_offset(int64_t b) const { return (b / 2) * pair_bytes + 64 + (b % 2) * code_bytes; }
  const std::byte* scales(const std::byte* group, int64_t b) const { return group + scales_offset(b); }
  const std::byte* codes(const std::byte* group, int64_t b) const { return group + codes_offset(b); }
  // Row j (< n) in the natural block layout (nb blocks of 34 or 18 bytes), the exact inverse of
  // packing: the vendor side's source when the model keeps no natural copy (LinearArgs::weight
  // without data).
  void natural_row(int64_t j, std::byte* out) const;

  DType dtype;
  int64_t n, k;
  int64_t nb;                     // blocks of 32 along k
  int64_t groups;                 // ⌈n / 16⌉
  int64_t code_bytes;             // one block's codes for 16 rows: 512 (q8_0) or 256 (q4_0)
  int64_t pair_bytes;             // two blocks: 64 bytes of scales + 2 · code_bytes
  int64_t group_bytes;            // ⌈nb / 2⌉ pairs
  HostMemory data;  // [groups, group_bytes], zero where rows or blocks are padding; in huge pages
};

// Packs a validated q8_0 / q4_0 weight view (rows may lie further apart than k needs).
std::shared_ptr<const PackedLinear> pack_q8_q4(const CpuContext& ctx, const ConstTensorView& weight);
// With CpuContext::amx, calls of at least this many rows run their blocks of 16 rows on the AMX
// tile unit (measurements in linear_packed.cc).
inline constexpr int64_t kAmxMinRows = 64;
// The activations' layout and correction the packed kernels of `isa` take.
QLayoutSpec packed_layout(Isa isa, DType wtype);
void packed_linear(const CpuContext& ctx, const Problem& p, const PackedLinear& w, const QuantizedActs& acts);

// ---- linear_gemv_float.cc ------------------------------------------------------------------
// f16, bf16, f8_e4m3, nf4 on AVX-512, any m (rows in groups of ≤ 4); the GEMV of those types.
bool has_fused_gemv(Isa isa, DType t);
void fgemv_avx512(const CpuContext& ctx, const Problem& p);

// ---- linear_float.cc -----------------------------------------------------------------------
// Any weight type: f32 weights read in place, others dequantized into small f32 panels.
void fgemm(const CpuContext& ctx, const Problem& p);

// Weights stream from DRAM once per call. The GEMVs that spend the most instructions per weight
// byte (q4_0, q8_0, nf4) ask for the line kPrefetchBytes ahead of what they consume, which keeps
// misses in flight while the core is busy (2 threads, interleaved A/B runs: q4_0 +26 % at 4096²
// and +53 % at 4096 × 11008, nf4 +17 %, q8_0 +2 % / +16 %); for the light ones (f32, f16, bf16,
// fp8) it cost 10–35 %, so they leave it to the hardware prefetcher. Prefetches never fault, so
// running past the weight's end is harmless. The distance was 8 KiB on 4 KiB pages; with the
// weights in huge pages (host_memory.h) 8 KiB ran 5–12 % slower than 1–4 KiB (packed q4_0 GEMV,
// 4 distances alternated in one process over 1.9 GB of copies: 4096² 0.46 against 0.52 ms,
// 4096 × 11008 1.0 against 1.11 ms).
inline constexpr int64_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const void* p) { _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0); }

// Rows per parallel_for item for kernels that stream the weight (GEMVs): ≥ kStreamChunkBytes of
// weight per chunk, so each thread reads long contiguous runs and the prefetchers (ours and the
// hardware's) ramp up once per run, not every few rows. Measured on 2 threads, q4_0 4096²: 16-row
// (37 KiB) chunks 32 GB/s, 64–128 rows (147–295 KiB) 43–45 GB/s, 2 chunks 41 GB/s (balance).
// A small model's weights are smaller than one such chunk (SmolLM2's 576 × 576 q4_0 projection is
// 187 KB), so the grain also leaves ≥ 4 items per thread, down to kMinStreamChunkBytes; otherwise
// one core would stream the whole matrix while the other waits.
// Each output row is computed by one item, whatever the split, so results never depend on it.
inline constexpr int64_t kStreamChunkBytes = 192 * 1024;
inline constexpr int64_t kMinStreamChunkBytes = 16 * 1024;
inline int64_t stream_grain(int64_t row_bytes, int64_t n_rows, int threads, int64_t min_rows = 1) {
  int64_t rows = (kStreamChunkBytes + row_bytes - 1) / row_bytes;
  if (threads > 1) {
    const int64_t balanced = (n_rows + 4 * threads - 1) / (4 * threads);
    const int64_t floor_rows = (kMinStreamChunkBytes + row_bytes - 1) / row_bytes;
    rows = std::min(rows, std::max(balanced, floor_rows));
  }
  return rows > min_rows ? rows : min_rows;
}

}  // namespace bf::cpu::lin
