// Non-owning, strided views of tensor memory. A view never frees anything: whoever owns the
// bytes (a mapped model file, a backend buffer) must outlive it. Kernels take views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "batch_forge/core/dtype.h"
#include "batch_forge/core/error.h"
#include "batch_forge/core/shape.h"

namespace bf {

template <typename Byte>
struct BasicTensorView {
  Byte* data = nullptr;  // first element
  DType dtype = DType::kF32;
  Shape shape;    // [d0, d1, ..., d_{r-1}]
  Shape strides;  // in elements; for block types, in blocks along the last axis (stride 1 there)

  // A contiguous row-major view over `bytes`; checks that the bytes hold exactly the shape.
  static BasicTensorView contiguous(std::span<Byte> bytes, DType dtype, const Shape& shape) {
    const auto n = shape.checked_numel();
    const auto need = n ? dtype_bytes(dtype, static_cast<uint64_t>(*n)) : std::nullopt;
    BF_CHECK(need && *need == bytes.size(), "view of ", bytes.size(), " bytes as ", dtype_name(dtype), " ",
             shape.to_string());
    BasicTensorView v;
    v.data = bytes.data();
    v.dtype = dtype;
    v.shape = shape;
    v.strides = contiguous_strides(shape);
    if (is_block_quantized(dtype) && shape.rank() > 0) {
      // Strides count blocks: a row of k elements is k / block_elems blocks.
      const int64_t per_block = dtype_info(dtype).block_elems;
      for (int i = 0; i + 1 < shape.rank(); ++i) v.strides[i] /= per_block;
    }
    return v;
  }

  int64_t numel() const { return shape.numel(); }
  bool is_contiguous() const {
    BasicTensorView c = contiguous_like();
    return c.strides == strides;
  }

  // Typed pointer to the first element; checks that T matches the element size and that the
  // data is aligned for T (a tensor from a file written without alignment may not be: copy it).
  template <typename T>
  T* as() const {
    BF_CHECK(!is_block_quantized(dtype) && sizeof(T) == dtype_info(dtype).block_bytes, "view of ", dtype_name(dtype),
             " read as a ", sizeof(T), "-byte type");
    BF_CHECK(reinterpret_cast<uintptr_t>(data) % alignof(T) == 0, "view of ", dtype_name(dtype),
             " at an address not aligned to ", alignof(T), " bytes; copy it first");
    return reinterpret_cast<T*>(data);
  }

 private:
  BasicTensorView contiguous_like() const {
    BasicTensorView v = *this;
    v.strides = contiguous_strides(shape);
    if (is_block_quantized(dtype) && shape.rank() > 0)
      for (int i = 0; i + 1 < shape.rank(); ++i) v.strides[i] /= dtype_info(dtype).block_elems;
    return v;
  }
};

using TensorView = BasicTensorView<std::byte>;
using ConstTensorView = BasicTensorView<const std::byte>;

}  // namespace bf
