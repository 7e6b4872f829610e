// Normalization ops: scalar references. These define the numbers every backend kernel is checked
// against (and are themselves checked against JAX/Equinox in tests/parity). They favour clarity
// over speed: double accumulation, one row at a time.
#pragma once

#include <cstdint>
#include <span>

namespace bf::ops::ref {

// Equinox RMSNorm over the last axis: y = x / sqrt(mean(x²) + eps) * weight.
// x, y: [rows, dim]; weight: [dim], or empty for no affine weight.
void rms_norm(std::span<const float> x, std::span<const float> weight, std::span<float> y, int64_t rows, int64_t dim,
              float eps);

// Equinox LayerNorm over the last axis: y = (x − mean) / sqrt(var + eps) * weight + bias
// (biased variance). x, y: [rows, dim]; weight, bias: [dim] each, or empty to leave it out.
void layer_norm(std::span<const float> x, std::span<const float> weight, std::span<const float> bias,
                std::span<float> y, int64_t rows, int64_t dim, float eps);

}  // namespace bf::ops::ref
