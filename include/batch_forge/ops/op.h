// What an op is, independent of who runs it: the kind, and the few properties a backend needs to
// say whether (and with which kernel) it can run it. Arguments of each op are plain structs of
// tensor views (ops/linear.h, ops/attention.h, ops/elementwise.h); every op has a scalar
// reference in src/ops/ that backends are checked against.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "batch_forge/core/dtype.h"

namespace bf {

enum class OpKind {
  kLinear,     // y = x · Wᵀ (+ b), W in any weight type
  kAttention,  // fused attention over the paged KV cache
  kRmsNorm,
  kLayerNorm,
  kRope,       // rotate-half rotary embedding, in place
  kUnary,      // SiLU, GELU (erf), GELU (tanh), softplus
  kSiluMul,    // SwiGLU gate: y = silu(gate) · up
  kSoftmax,
  kEmbedding,  // gather rows of a (possibly quantized) table
  kAdd,        // residual add
  kKvWrite,    // new tokens' K and V into their paged-cache slots
};

std::string_view op_kind_name(OpKind kind);

// Enough of an op's arguments to choose a kernel.
struct OpDesc {
  OpKind kind = OpKind::kLinear;
  DType dtype = DType::kF32;  // weight / table dtype for kLinear and kEmbedding, else activations
  int64_t m = 0;              // rows (tokens) for kLinear; queries for kAttention
  int64_t n = 0;              // output features for kLinear
  int64_t k = 0;              // reduction length for kLinear
  bool packed = false;        // kLinear: the weight comes prepared (LinearArgs::packed)
};

// Which side runs ops: the vendor library (OpenBLAS, cuBLAS) or our own kernels. kAuto picks per
// op and shape; the other two force a side where both exist (for benchmarks and tests).
enum class KernelPreference { kAuto, kVendor, kCustom };

std::string_view kernel_preference_name(KernelPreference p);

// The kernel a backend would run for an OpDesc.
struct KernelInfo {
  std::string name;     // "openblas sgemm", "q4_0 gemv avx512-vnni", "flash attention avx512"
  bool vendor = false;  // true: the vendor library does the work
};

}  // namespace bf
