// Block-quantized weight formats (DESIGN.md "Model file contract"; byte layouts in
// docs/quantization.md). Blocks run along the reduction (input, innermost) axis of a weight
// [n_out, k_in]: a row of k values is k / kBlock blocks, stored back to back. Scales are IEEE
// half floats stored as their 16 bits, little-endian.
#pragma once

#include <cstdint>

namespace bf {

// q8_0: x[i] = qs[i] · d.
struct BlockQ8_0 {
  static constexpr int kBlock = 32;
  uint16_t d;      // f16 scale
  int8_t qs[32];   // quantized values, element i at qs[i]
};
static_assert(sizeof(BlockQ8_0) == 34);

// q4_0: x[i] = (q[i] − 8) · d, q in [0, 15]; byte j holds q[j] in its low nibble and q[j + 16] in
// its high nibble (one 16-byte load and two masks give the two halves of the block in order).
struct BlockQ4_0 {
  static constexpr int kBlock = 32;
  uint16_t d;      // f16 scale
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18);

// nf4: x[i] = kNf4Values[c[i]] · absmax; byte j holds c[j] (low nibble) and c[j + 32] (high).
struct BlockNF4 {
  static constexpr int kBlock = 64;
  uint16_t absmax;  // f16
  uint8_t qs[32];
};
static_assert(sizeof(BlockNF4) == 34);

// The 16 NormalFloat-4 levels (QLoRA, Dettmers et al. 2023): quantiles of N(0, 1) scaled to
// [−1, 1], with an exact zero at index 7.
inline constexpr float kNf4Values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

// fp8_e4m3 weights are not blocked: the weight is stored as F8_E4M3 [n_out, k_in] with one f32
// scale per output row (a separate tensor named "<weight>.scale", shape [n_out]):
// x[r, i] = fp8(w[r, i]) · scale[r].
inline constexpr float kFp8E4M3Max = 448.0f;

}  // namespace bf
