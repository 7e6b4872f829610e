// Softmax over the last axis: scalar reference (see ops/norm.h for what references are for).
#pragma once

#include <cstdint>
#include <span>

namespace bf::ops::ref {

// y[r, i] = exp(x[r, i] − max_r) / Σ_j exp(x[r, j] − max_r). x, y: [rows, dim]. Rows of −inf only
// give NaN, as jax.nn.softmax does.
void softmax(std::span<const float> x, std::span<float> y, int64_t rows, int64_t dim);

}  // namespace bf::ops::ref
