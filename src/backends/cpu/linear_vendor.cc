// The vendor side of linear: OpenBLAS (the serial library) on row ranges of the weight, one range
// per pool chunk, so our pool is the only one. A non-f32 weight is dequantized to f32 rows in a
// per-thread scratch (≤ kScratchFloats at a time) and handed to the same calls: that is what
// "vendor" means for a quantized weight, and what the benchmark compares our kernels with. A
// packed-only weight (no natural data) is unpacked row by row into the natural blocks first, so
// the dequantized rows are the same.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backends/cpu/linear_internal.h"

namespace bf::cpu::lin {
namespace {

constexpr int64_t kScratchFloats = 256 * 1024;  // 1 MiB of dequantized rows: stays in L2

// Weight rows per chunk for sgemm: large enough for OpenBLAS's packing to pay off (it packs x once
// per call), small enough that 2–8 threads get balanced work on a 4096-row weight.
constexpr int64_t kSgemmRows = 128;

// y[:, j0:j0+nj] = x · w[nj, k]ᵀ, w rows ldw floats apart.
void blas_rows(const Problem& p, const float* w, int64_t ldw, int64_t j0, int64_t nj) {
  const auto m = static_cast<blasint>(p.m), n = static_cast<blasint>(nj), k = static_cast<blasint>(p.k);
  if (p.m == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, static_cast<blasint>(ldw), p.x, 1, 0.0f, p.y + j0, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, p.x, static_cast<blasint>(p.ldx), w,
                static_cast<blasint>(ldw), 0.0f, p.y + j0, static_cast<blasint>(p.ldy));
}

void add_bias(const Problem& p, int64_t j0, int64_t j1) {
  if (!p.bias) return;
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = j0; j < j1; ++j) p.y[i * p.ldy + j] += p.bias[j];
}

}  // namespace

void vendor_linear(const CpuContext& ctx, const Problem& p, const PackedLinear* packed) {
  // OpenBLAS's sgemv rounds a row differently depending on how many rows one call covers, so the
  // split must not follow the thread count here (threads = 1: shape only).
  const int64_t grain = p.m == 1 ? stream_grain(p.k * 4, p.n, 1, 16) : kSgemmRows;
  if (p.wtype == DType::kF32) {
    const auto* w = reinterpret_cast<const float*>(p.w);
    const int64_t ldw = p.w_row_bytes / 4;
    ctx.pool->parallel_for(p.n, grain, [&](int64_t j0, int64_t j1) {
      blas_rows(p, w + j0 * ldw, ldw, j0, j1 - j0);
      add_bias(p, j0, j1);
    });
    return;
  }
  const DequantFn dequant = dequant_for(ctx.isa);
  ctx.pool->parallel_for(p.n, grain, [&](int64_t j0, int64_t j1) {
    thread_local std::vector<float> scratch;  // [rows, k] dequantized weight rows
    const int64_t rows = std::clamp<int64_t>(kScratchFloats / p.k, 1, j1 - j0);
    scratch.resize(static_cast<size_t>(rows * p.k));
    thread_local std::vector<std::byte> natural;  // one row unpacked from `packed`, when p.w is null
    if (!p.w) natural.resize(static_cast<size_t>(*dtype_bytes(p.wtype, static_cast<uint64_t>(p.k))));
    for (int64_t js = j0; js < j1; js += rows) {
      const int64_t nj = std::min(rows, j1 - js);
      for (int64_t r = 0; r < nj; ++r) {
        const std::byte* row = natural.data();
        if (p.w)
          row = p.row(js + r);
        else
          packed->natural_row(js + r, natural.data());
        dequant(p.wtype, row, 0, p.k, p.row_scale(js + r), scratch.data() + r * p.k);
      }
      blas_rows(p, scratch.data(), p.k, js, nj);
    }
    add_bias(p, j0, j1);
  });
}

}  // namespace bf::cpu::lin
