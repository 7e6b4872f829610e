// Linear: argument validation and the scalar reference y = x · Wᵀ (+ b).
#include <cstdint>
#include <vector>

#include "batch_forge/core/error.h"
#include "ops/reference.h"

namespace bf::ops {
namespace {

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, "linear", message); }

bool is_weight_dtype(DType dt) {
  switch (dt) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kNF4: return true;
    default: return false;
  }
}

// An f32 vector [len]: contiguous, 4-byte aligned.
void check_vector(const ConstTensorView& v, const char* name, int64_t len) {
  if (v.dtype != DType::kF32) fail(cat(name, " must be f32, got ", dtype_name(v.dtype)));
  if (v.shape.rank() != 1 || v.shape[0] != len)
    fail(cat(name, " must have shape [", len, "] (one per output feature), got ", v.shape.to_string()));
  if (v.strides.rank() != 1 || v.strides[0] != 1) fail(cat(name, " must be contiguous, got strides ", v.strides.to_string()));
  if (reinterpret_cast<uintptr_t>(v.data) % 4 != 0) fail(cat(name, " is not 4-byte aligned; copy it first"));
}

// An f32 matrix [rows, cols] whose rows are contiguous (row stride ≥ cols), 4-byte aligned.
template <typename View>
void check_rows(const View& v, const char* name, int64_t cols_expected, bool check_cols) {
  if (v.dtype != DType::kF32) fail(cat(name, " must be f32, got ", dtype_name(v.dtype)));
  if (v.shape.rank() != 2) fail(cat(name, " must have rank 2, got shape ", v.shape.to_string()));
  if (check_cols && v.shape[1] != cols_expected)
    fail(cat(name, " must have ", cols_expected, " columns, got shape ", v.shape.to_string()));
  if (v.strides.rank() != 2 || v.strides[1] != 1 || v.strides[0] < v.shape[1])
    fail(cat(name, " rows must be contiguous (strides [≥", v.shape[1], ", 1]), got strides ", v.strides.to_string()));
  if (v.shape.numel() > 0 && v.data == nullptr) fail(cat(name, " has no data"));
  if (reinterpret_cast<uintptr_t>(v.data) % 4 != 0) fail(cat(name, " is not 4-byte aligned; copy it first"));
}

// Byte range [first, last) a [rows, cols] f32 view with row stride `ld` touches.
std::pair<uintptr_t, uintptr_t> f32_span(const std::byte* data, int64_t rows, int64_t cols, int64_t ld) {
  const auto begin = reinterpret_cast<uintptr_t>(data);
  if (rows == 0 || cols == 0) return {begin, begin};
  return {begin, begin + static_cast<uintptr_t>(((rows - 1) * ld + cols) * 4)};
}

bool overlaps(std::pair<uintptr_t, uintptr_t> a, std::pair<uintptr_t, uintptr_t> b) {
  return a.first < a.second && b.first < b.second && a.first < b.second && b.first < a.second;
}

}  // namespace

void validate(const LinearArgs& a) {
  const ConstTensorView& w = a.weight;
  if (!is_weight_dtype(w.dtype))
    fail(cat("weight type ", dtype_name(w.dtype), " is not supported (expected f32, f16, bf16, f8_e4m3, q8_0, q4_0 or nf4)"));
  if (w.shape.rank() != 2) fail(cat("weight must have rank 2 [out, in], got shape ", w.shape.to_string()));
  const int64_t n = w.shape[0], k = w.shape[1];
  if (n < 1 || k < 1) fail(cat("weight must have at least one row and column, got shape ", w.shape.to_string()));
  const int64_t block = dtype_info(w.dtype).block_elems;
  if (k % block != 0)
    fail(cat("weight ", dtype_name(w.dtype), " ", w.shape.to_string(), ": the input size ", k,
             " must be a multiple of the block size ", block));
  // Strides of a block type count blocks along k (ConstTensorView::contiguous).
  if (w.strides.rank() != 2 || w.strides[1] != 1 || w.strides[0] < k / block)
    fail(cat("weight rows must be contiguous (strides [≥", k / block, ", 1]), got strides ", w.strides.to_string()));
  // A packed-only weight (no natural data) is for the backend that packed it, which reads the
  // packed form on every path.
  if (w.data == nullptr && a.packed == nullptr) fail("weight has no data (and no packed form)");
  if (w.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(w.data) % 4 != 0)
    fail("f32 weight is not 4-byte aligned; copy it first");

  if (w.dtype == DType::kF8E4M3) {
    if (a.scale.data == nullptr) fail("f8_e4m3 weight needs a per-row scale [out] (LinearArgs::scale)");
    check_vector(a.scale, "scale", n);
  } else if (a.scale.data != nullptr) {
    fail(cat("scale is only used with f8_e4m3 weights; this weight is ", dtype_name(w.dtype)));
  }
  if (a.bias.data != nullptr) check_vector(a.bias, "bias", n);

  check_rows(a.x, "x", k, true);
  const int64_t m = a.x.shape[0];
  check_rows(a.y, "y", n, true);
  if (a.y.shape[0] != m) fail(cat("y must have shape [", m, ", ", n, "], got ", a.y.shape.to_string()));

  // y is written while x, the weight, scale and bias are read: they must not share memory.
  const auto y_span = f32_span(a.y.data, m, n, a.y.strides[0]);
  if (overlaps(y_span, f32_span(a.x.data, m, k, a.x.strides[0]))) fail("y overlaps x; in-place linear is not supported");
  const int64_t row_bytes = static_cast<int64_t>(*dtype_bytes(w.dtype, static_cast<uint64_t>(k)));
  const int64_t stride_bytes = w.strides[0] * static_cast<int64_t>(dtype_info(w.dtype).block_bytes);
  const auto w_begin = reinterpret_cast<uintptr_t>(w.data);
  if (w.data && overlaps(y_span, {w_begin, w_begin + static_cast<uintptr_t>((n - 1) * stride_bytes + row_bytes)}))
    fail("y overlaps the weight");
  if (a.bias.data && overlaps(y_span, f32_span(a.bias.data, 1, n, n))) fail("y overlaps the bias");
}

// Double accumulation over f32 products of the dequantized weight: the value the kernels are
// compared with (they accumulate in f32, or in int32 over quantized activations).
void ref::linear(const LinearArgs& a) {
  validate(a);
  if (a.weight.data == nullptr) fail("the reference reads the weight's natural data; this one is packed only");
  const int64_t m = a.x.shape[0], n = a.weight.shape[0], k = a.weight.shape[1];
  const auto* x = reinterpret_cast<const float*>(a.x.data);
  auto* y = reinterpret_cast<float*>(a.y.data);
  const auto* scale = reinterpret_cast<const float*>(a.scale.data);
  const auto* bias = reinterpret_cast<const float*>(a.bias.data);
  std::vector<float> w(static_cast<size_t>(k));  // [k]: one dequantized weight row
  for (int64_t j = 0; j < n; ++j) {
    dequantize_row(a.weight, j, w, scale);
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * a.x.strides[0];
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(xi[p]) * static_cast<double>(w[p]);
      if (bias) acc += bias[j];
      y[i * a.y.strides[0] + j] = static_cast<float>(acc);
    }
  }
}

}  // namespace bf::ops
