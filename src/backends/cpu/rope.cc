// Rotate-half RoPE on the CPU, in place: per row, a table of cos / sin for the head_dim / 2
// frequencies (vectorized sincos of the model's f32 angles), then every head rotated with it, so
// the transcendental cost is shared by all heads. AVX-512, AVX2 and scalar versions from
// rope-inl.h; rows spread over the pool.
#include <cmath>
#include <vector>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"
#include "ops/rope_freqs.h"

namespace bf::cpu {
namespace {

struct RopeRows {
  float* x;  // [rows, n_heads, head_dim] with strides row_stride, head_stride, 1
  int64_t row_stride;
  int64_t head_stride;
  int64_t n_heads;
  int64_t head_dim;
  const int32_t* positions;  // [rows]
  const float* inv_freq;     // [head_dim / 2]
};

// Floats from the cos table to the sin table: half a head, rounded up to 64 bytes.
int64_t rope_table_stride(int64_t head_dim) { return (head_dim / 2 + 15) / 16 * 16; }

}  // namespace
}  // namespace bf::cpu

#define BF_SIMD_INCLUDE "backends/cpu/rope-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {

void rope(const CpuContext& ctx, const RopeArgs& a) {
  const int64_t rows = a.x.shape[0], heads = a.x.shape[1], head_dim = a.x.shape[2], half = head_dim / 2;
  if (rows == 0 || heads == 0 || half == 0) return;
  std::vector<float> inv_freq(half);  // [half]
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = ops::rope_inv_freq(i, head_dim, a.theta);
  const RopeRows p{f32_data(a.x), a.x.strides[0], a.x.strides[1], heads, head_dim, a.positions, inv_freq.data()};
  const auto fn = simd::select_isa(ctx.isa, &simd::scalar::rope_rows, &simd::avx2::rope_rows, &simd::avx512::rope_rows);
  ctx.pool->parallel_for(
      rows, rows_per_chunk(heads * head_dim),
      [&](int64_t begin, int64_t end) {
        // [2, half]: cos, sin of this row's angles, each on a 64-byte boundary: the rotation reads
        // them with full-width loads, and loads straddling cache lines cost ~40% from DRAM (measured).
        std::vector<float> table(2 * rope_table_stride(head_dim) + 16);
        fn(p, begin, end, table.data() + (16 - reinterpret_cast<uintptr_t>(table.data()) / 4 % 16) % 16);
      },
      Schedule::kStatic);
}

}  // namespace bf::cpu
