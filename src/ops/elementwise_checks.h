// Argument checks shared by the validate() functions of the row-wise and element-wise ops. Each
// throws Error(kInvalidArgument, op, ...) naming the argument and the rule it breaks, e.g.
//   [rms_norm] weight must have shape [101] (the last dim of x) or be empty, got [100]
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "batch_forge/core/error.h"
#include "batch_forge/core/tensor.h"

namespace bf::ops::checks {

[[noreturn]] inline void fail(std::string_view op, const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, op, message);
}

// An optional argument (weight, bias) is absent when it is a default view: no data, no shape.
template <typename Byte>
bool present(const BasicTensorView<Byte>& t) {
  return t.data != nullptr || t.shape.rank() != 0;
}

template <typename Byte>
void f32(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t) {
  if (t.dtype != DType::kF32) fail(op, cat(name, " must be f32, got ", dtype_name(t.dtype)));
  if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0)
    fail(op, cat(name, " is at an address not aligned to 4 bytes; copy it first"));
}

template <typename Byte>
void rank(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t, int want,
          std::string_view layout) {
  if (t.shape.rank() != want)
    fail(op, cat(name, " must have rank ", want, " ", layout, ", got shape ", t.shape.to_string()));
  if (t.strides.rank() != want) fail(op, cat(name, " has ", t.strides.rank(), " strides for a shape of rank ", want));
}

// Data must be there whenever there are elements to read or write.
template <typename Byte>
void has_data(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t) {
  if (t.data == nullptr && t.shape.numel() != 0) fail(op, cat(name, " ", t.shape.to_string(), " has no data"));
}

template <typename ByteA, typename ByteB>
void same_shape(std::string_view op, std::string_view name, const BasicTensorView<ByteA>& t,
                std::string_view other_name, const BasicTensorView<ByteB>& other) {
  if (!(t.shape == other.shape))
    fail(op, cat(name, " has shape ", t.shape.to_string(), " but ", other_name, " has ", other.shape.to_string()));
}

// Dense row-major with no gaps (what element-wise kernels walk as one flat array).
template <typename Byte>
void contiguous(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t) {
  if (!t.is_contiguous())
    fail(op, cat(name, " must be contiguous, got strides ", t.strides.to_string(), " for shape ", t.shape.to_string()));
}

// The innermost dim has stride 1 and each outer dim steps over at least the extent of the dims
// inside it, so that no two elements share memory (rows may have padding between them).
template <typename Byte>
void rows_dense(std::string_view op, std::string_view name, const BasicTensorView<Byte>& t) {
  const int r = t.shape.rank();
  if (r == 0) return;
  if (t.strides[r - 1] != 1)
    fail(op, cat(name, " must have stride 1 in its last dim, got strides ", t.strides.to_string()));
  int64_t extent = t.shape[r - 1];  // elements (blocks for block types) spanned by one slice
  if (is_block_quantized(t.dtype)) extent /= dtype_info(t.dtype).block_elems;
  for (int i = r - 2; i >= 0; --i) {
    if (t.strides[i] < extent)
      fail(op,
           cat(name, " has stride ", t.strides[i], " in dim ", i, ", less than the ", extent,
               " items of the dims inside it (strides ", t.strides.to_string(), ", shape ", t.shape.to_string(), ")"));
    extent = t.strides[i] * t.shape[i];
  }
}

// Bytes [first, last) that a dense-rows f32 view touches; {p, p} when it has no elements.
template <typename Byte>
std::pair<uintptr_t, uintptr_t> byte_span(const BasicTensorView<Byte>& t) {
  const auto base = reinterpret_cast<uintptr_t>(t.data);
  if (t.shape.numel() == 0) return {base, base};
  int64_t last = 0;
  for (int i = 0; i < t.shape.rank(); ++i) last += (t.shape[i] - 1) * t.strides[i];
  return {base, base + static_cast<uintptr_t>(last + 1) * 4};
}

// An output may be the very same view as an input (in-place) or not touch it at all; a partial
// overlap would read values the kernel has already overwritten.
template <typename Byte>
void same_or_disjoint(std::string_view op, std::string_view out_name, const TensorView& out, std::string_view in_name,
                      const BasicTensorView<Byte>& in) {
  const auto [a0, a1] = byte_span(out);
  const auto [b0, b1] = byte_span(in);
  if (a0 >= b1 || b0 >= a1) return;
  if (reinterpret_cast<uintptr_t>(out.data) == reinterpret_cast<uintptr_t>(in.data) && out.strides == in.strides)
    return;
  fail(op, cat(out_name, " overlaps ", in_name,
               " without being the same view (in place is allowed, a shifted "
               "overlap is not)"));
}

// An optional per-feature vector (norm weight, bias): absent, or f32 [dim], contiguous.
inline void feature_vector(std::string_view op, std::string_view name, const ConstTensorView& t, int64_t dim) {
  if (!present(t)) return;
  f32(op, name, t);
  if (t.shape.rank() != 1 || t.shape[0] != dim)
    fail(op, cat(name, " must have shape [", dim, "] (the last dim of x) or be empty, got ", t.shape.to_string()));
  rows_dense(op, name, t);
  has_data(op, name, t);
}

}  // namespace bf::ops::checks
