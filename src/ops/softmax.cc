#include "ops/softmax.h"

#include <cmath>
#include <limits>

#include "batch_forge/core/error.h"

namespace bf::ops::ref {

void softmax(std::span<const float> x, std::span<float> y, int64_t rows, int64_t dim) {
  BF_CHECK(rows >= 0 && dim > 0 && x.size() == static_cast<size_t>(rows * dim) && y.size() == x.size(),
           "[softmax] x has ", x.size(), ", y has ", y.size(), " floats for [", rows, ", ", dim, "]");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * dim;
    float* yr = y.data() + r * dim;
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < dim; ++i) max = std::max(max, double{xr[i]});
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += std::exp(xr[i] - max);
    for (int64_t i = 0; i < dim; ++i) yr[i] = static_cast<float>(std::exp(xr[i] - max) / sum);
  }
}

}  // namespace bf::ops::ref
