// Element-wise comparison of a result with a reference, for parity and conformance tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace bf::testing {

struct Tolerance {
  double atol = 0;
  double rtol = 0;
};

// Element-wise |got − want| ≤ atol + rtol·|want| (numpy.allclose's rule); NaN matches NaN and an
// infinity matches the same infinity only.
// The failure message names the worst element, its index, both values and the max errors.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want, Tolerance tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: got " << got.size() << ", want " << want.size();
  double max_abs = 0, max_rel = 0, worst_excess = 0;
  size_t worst = 0, n_bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (g == w || (std::isnan(g) && std::isnan(w))) continue;  // exact, the same infinity, or NaN for NaN
    const double err = std::abs(g - w);
    const double allowed = std::isinf(w) ? 0 : tol.atol + tol.rtol * std::abs(w);  // an infinity must match exactly
    max_abs = std::max(max_abs, err);
    if (w != 0) max_rel = std::max(max_rel, err / std::abs(w));
    if (!(err <= allowed)) {  // also catches a NaN on one side only
      ++n_bad;
      const double excess = std::isnan(err) ? INFINITY : err - allowed;
      if (n_bad == 1 || excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess() << "max abs err " << max_abs << ", max rel err " << max_rel;
  return ::testing::AssertionFailure() << n_bad << " of " << got.size() << " elements outside atol " << tol.atol
                                       << " + rtol " << tol.rtol << "; worst at index " << worst << ": got "
                                       << got[worst] << ", want " << want[worst] << " (max abs err " << max_abs << ")";
}

}  // namespace bf::testing
