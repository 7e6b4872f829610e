// Linear layer: y[m, n] = x[m, k] · W[n, k]ᵀ (+ bias[n]), W stored as Equinox holds it (out, in).
#pragma once

#include "batch_forge/core/tensor.h"

namespace bf {

class PackedWeight;  // batch_forge/backends/backend.h

struct LinearArgs {
  ConstTensorView x;       // [m, k] f32, rows contiguous
  ConstTensorView weight;  // [n, k]: f32, f16, bf16, q8_0, q4_0, nf4 (blocks along k) or f8_e4m3
  ConstTensorView scale;   // [n] f32 per-row scale for f8_e4m3 weights; empty (data == nullptr) otherwise
  ConstTensorView bias;    // [n] f32, or empty
  TensorView y;            // [m, n] f32, rows contiguous; overwritten
  // The same weight as Backend::pack_linear_weight(weight) prepared it, or null. `weight` stays
  // the logical view (dtype, shape and strides are validated as always). Its data may be null
  // when `packed` is given — a packed-only weight, whose natural copy the model dropped — and the
  // backend then reads the packed form on every path (the CPU vendor side unpacks rows of it);
  // the scalar reference needs the data. Only the backend that made it may be given it.
  const PackedWeight* packed = nullptr;
};

}  // namespace bf
