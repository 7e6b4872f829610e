#include "ops/norm.h"

#include <cmath>

#include "batch_forge/core/error.h"

namespace bf::ops::ref {
namespace {

void check_shapes(const char* op, size_t x, size_t y, size_t weight, size_t bias, int64_t rows, int64_t dim) {
  const auto n = static_cast<size_t>(rows * dim);
  BF_CHECK(rows >= 0 && dim > 0 && x == n && y == n, "[", op, "] x has ", x, ", y has ", y, " floats for [", rows, ", ",
           dim, "]");
  BF_CHECK(weight == 0 || weight == static_cast<size_t>(dim), "[", op, "] weight has ", weight, " floats, dim ", dim);
  BF_CHECK(bias == 0 || bias == static_cast<size_t>(dim), "[", op, "] bias has ", bias, " floats, dim ", dim);
}

}  // namespace

void rms_norm(std::span<const float> x, std::span<const float> weight, std::span<float> y, int64_t rows, int64_t dim,
              float eps) {
  check_shapes("rms_norm", x.size(), y.size(), weight.size(), 0, rows, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * dim;
    float* yr = y.data() + r * dim;
    double sum_sq = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += double{xr[i]} * xr[i];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i)
      yr[i] = static_cast<float>(xr[i] * inv_rms * (weight.empty() ? 1.0 : double{weight[i]}));
  }
}

void layer_norm(std::span<const float> x, std::span<const float> weight, std::span<const float> bias,
                std::span<float> y, int64_t rows, int64_t dim, float eps) {
  check_shapes("layer_norm", x.size(), y.size(), weight.size(), bias.size(), rows, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * dim;
    float* yr = y.data() + r * dim;
    double mean = 0;
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<double>(dim);
    double var = 0;
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(dim);
    const double inv_std = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; ++i) {
      double v = (xr[i] - mean) * inv_std;
      if (!weight.empty()) v *= weight[i];
      if (!bias.empty()) v += bias[i];
      yr[i] = static_cast<float>(v);
    }
  }
}

}  // namespace bf::ops::ref
