// RoPE inverse frequencies, shared by the reference and every kernel so that all of them rotate
// by exactly the same f32 angles.
#pragma once

#include <cmath>
#include <cstdint>

namespace bf::ops {

// f_i = 1 / theta^(2i / head_dim) for i < head_dim / 2, computed the way the JAX model does
// (python/batch_forge/families/transformer.py, `rope`): the exponent 2i / head_dim rounded to f32,
// theta^exponent rounded to f32, the reciprocal in f32. The power itself is taken in double and
// rounded once; XLA's f32 pow can differ from that by a few ulps when head_dim is not a power of
// two, which moves the angle at position p by about p · 1e-6 · f_i (the parity tolerance of such
// fixtures says so).
inline float rope_inv_freq(int64_t i, int64_t head_dim, float theta) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
  const auto power = static_cast<float>(std::pow(static_cast<double>(theta), static_cast<double>(exponent)));
  return 1.0f / power;
}

// The rotation angle of frequency i at `position`, rounded to f32 as the model computes it
// (positions.astype(f32) · f_i). Its cos and sin are then taken as exactly as each side can.
inline float rope_angle(int32_t position, float inv_freq) { return static_cast<float>(position) * inv_freq; }

}  // namespace bf::ops
