// Shared by the row-wise and element-wise CPU kernels (norm.cc, rope.cc, activation.cc,
// softmax.cc, embedding.cc): how work is cut into chunks for the thread pool, and typed pointers
// into validated views.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "batch_forge/core/tensor.h"
#include "batch_forge/core/thread_pool.h"

namespace bf::cpu {

// Elements per chunk of work: large enough that waking a thread (a few microseconds) is small
// beside the chunk (16K floats in and out: ~10 us at DRAM speed), small enough to balance rows
// of 4096 over a few cores. Chunking depends on the shape only, so results do not depend on the
// thread count.
inline constexpr int64_t kChunkElems = 16384;

inline int64_t rows_per_chunk(int64_t elems_per_row) {
  return std::max<int64_t>(1, kChunkElems / std::max<int64_t>(1, elems_per_row));
}

// fn(begin, end) over [0, n) in chunks whose bounds are multiples of 64 elements (256 bytes), so
// every chunk but the last runs whole vectors from an aligned start.
inline void parallel_flat(ThreadPool& pool, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kBlock = 64;
  pool.parallel_for((n + kBlock - 1) / kBlock, kChunkElems / kBlock,
                    [&](int64_t b, int64_t e) { fn(b * kBlock, std::min(n, e * kBlock)); }, Schedule::kStatic);
}

inline const float* f32_data(const ConstTensorView& t) { return reinterpret_cast<const float*>(t.data); }
inline float* f32_data(const TensorView& t) { return reinterpret_cast<float*>(t.data); }
// An optional argument (weight, bias) as a pointer, nullptr when absent.
inline const float* f32_or_null(const ConstTensorView& t) {
  return t.data != nullptr ? reinterpret_cast<const float*>(t.data) : nullptr;
}

}  // namespace bf::cpu
