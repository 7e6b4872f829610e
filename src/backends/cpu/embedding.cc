// Embedding gather on the CPU: f32 rows are copied, f16 / bf16 rows converted with SIMD
// (embedding-inl.h), quantized rows (q8_0, q4_0, nf4) dequantized by ops::dequantize_row, the
// definition of their values. ids spread over the pool.
#include <cstring>
#include <span>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"
#include "ops/reference.h"

#define BF_SIMD_INCLUDE "backends/cpu/embedding-inl.h"
#include "backends/cpu/foreach_isa.h"

namespace bf::cpu {

void embedding(const CpuContext& ctx, const EmbeddingArgs& a) {
  using RowFn = void (*)(const std::byte*, float*, int64_t);
  const int64_t dim = a.table.shape[1];
  const size_t elem_bytes = a.table.dtype == DType::kF32 ? 4 : 2;  // the plain types
  RowFn half_fn = nullptr;
  if (a.table.dtype == DType::kF16)
    half_fn = simd::select_isa<RowFn>(ctx.isa, &simd::scalar::half_row_to_f32<false>,
                                      &simd::avx2::half_row_to_f32<false>, &simd::avx512::half_row_to_f32<false>);
  if (a.table.dtype == DType::kBF16)
    half_fn = simd::select_isa<RowFn>(ctx.isa, &simd::scalar::half_row_to_f32<true>, &simd::avx2::half_row_to_f32<true>,
                                      &simd::avx512::half_row_to_f32<true>);
  ctx.pool->parallel_for(
      a.n, rows_per_chunk(dim),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float* y = f32_data(a.y) + i * a.y.strides[0];  // [dim]
          const int64_t id = a.ids[i];
          if (a.table.dtype == DType::kF32 || half_fn) {
            const std::byte* row = a.table.data + static_cast<size_t>(id * a.table.strides[0]) * elem_bytes;
            if (half_fn)
              half_fn(row, y, dim);
            else
              std::memcpy(y, row, static_cast<size_t>(dim) * 4);
          } else {
            ops::dequantize_row(a.table, id, std::span<float>(y, static_cast<size_t>(dim)));
          }
        }
      },
      Schedule::kStatic);
}

}  // namespace bf::cpu
