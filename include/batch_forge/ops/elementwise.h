// Row-wise and element-wise ops. Activations are f32 and row-major; "rows" are tokens.
#pragma once

#include <cstdint>

#include "batch_forge/core/tensor.h"

namespace bf {

// Equinox RMSNorm: y = x / sqrt(mean(x²) + eps) · weight + bias. (eqx.nn.RMSNorm has a bias
// unless use_bias=False, as it has a weight unless use_weight=False.)
struct RmsNormArgs {
  ConstTensorView x;       // [rows, dim] f32
  ConstTensorView weight;  // [dim] f32, or empty for no weight
  ConstTensorView bias;    // [dim] f32, or empty for no bias
  float eps = 1e-5f;
  TensorView y;            // [rows, dim] f32 (may alias x)
};

// Equinox LayerNorm: y = (x − mean) / sqrt(var + eps) · weight + bias (biased variance).
struct LayerNormArgs {
  ConstTensorView x;       // [rows, dim] f32
  ConstTensorView weight;  // [dim] f32, or empty
  ConstTensorView bias;    // [dim] f32, or empty
  float eps = 1e-5f;
  TensorView y;            // [rows, dim] f32 (may alias x)
};

// Rotate-half (NeoX) RoPE as equinox.nn.RotaryPositionalEmbedding, at explicit positions:
// for i < d/2, with f_i = theta^(−2i/d) and a = pos · f_i:
//   y[i] = x[i]·cos a − x[i + d/2]·sin a,   y[i + d/2] = x[i + d/2]·cos a + x[i]·sin a.
struct RopeArgs {
  TensorView x;                 // [rows, n_heads, head_dim] f32, rotated in place
  const int32_t* positions{};   // [rows]
  float theta = 10000.0f;
};

enum class UnaryOp {
  kSilu,      // x · sigmoid(x)
  kGelu,      // x · Φ(x), exact (erf) — jax.nn.gelu(approximate=False)
  kGeluTanh,  // tanh approximation — jax.nn.gelu(approximate=True)
  kSoftplus,  // log(1 + eˣ), computed without overflow — jax.nn.softplus
};

struct UnaryArgs {
  UnaryOp op = UnaryOp::kSilu;
  ConstTensorView x;  // any shape, contiguous f32
  TensorView y;       // same shape (may alias x)
};

// SwiGLU gate: y = silu(gate) · up.
// y = silu(gate) · up. Each view is contiguous, or [rows, width] with rows apart (stride 1 along
// width; e.g. the two halves of a fused gate|up matmul's output, read in place).
struct SiluMulArgs {
  ConstTensorView gate;  // f32
  ConstTensorView up;    // same shape
  TensorView y;          // same shape (may be the same view as either)
};

struct SoftmaxArgs {
  ConstTensorView x;  // [rows, dim] f32; softmax over dim
  TensorView y;       // [rows, dim] (may alias x)
};

// y[i, :] = table[ids[i], :], dequantized to f32.
struct EmbeddingArgs {
  ConstTensorView table;     // [vocab, dim]: f32, f16, bf16, q8_0, q4_0, nf4
  const int32_t* ids{};      // [n]; every id in [0, vocab) (the caller validates)
  int64_t n = 0;
  TensorView y;              // [n, dim] f32
};

// y = a + b, element-wise.
struct AddArgs {
  ConstTensorView a;  // contiguous f32
  ConstTensorView b;  // same shape
  TensorView y;       // same shape (may alias a or b)
};

}  // namespace bf
