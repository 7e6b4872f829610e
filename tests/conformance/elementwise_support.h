// Helpers shared by the element-wise conformance cases (norm_cases.cc, activation_cases.cc).
#pragma once

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conformance.h"

namespace bf::conformance {

// A backend like the variant under test but with another thread count, for the check that the
// result does not depend on it: 1 and 3 threads must give the same bits.
inline std::unique_ptr<Backend> with_threads(const BackendVariant& v, int threads) {
  BackendOptions options = v.options;
  options.threads = threads;
  return create_backend(v.backend, options);
}

// The thread count to compare against: 3 for a 1-thread variant, else 1.
inline int other_thread_count(const BackendVariant& v) { return v.options.threads == 1 ? 3 : 1; }

inline ::testing::AssertionResult bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "first difference at " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// run(backend, out) computes an op into `out` (already sized like `want`). Checks it on the
// variant's backend against `want` (the reference) at `tol`, and that a backend with the other
// thread count computes the same bits.
// all_close, with non-finite values compared exactly first: NaN where the reference has NaN, the
// same infinity where it has one. (support/all_close.h's rule |got − want| ≤ tol is NaN for those,
// so it cannot say "both inf" or "both NaN" itself.)
inline ::testing::AssertionResult close_or_same_special(std::vector<float> got, std::vector<float> want,
                                                        Tolerance tol) {
  if (got.size() != want.size()) return all_close(got, want, tol);
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isfinite(want[i]) && std::isfinite(got[i])) continue;
    const bool same = std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i];
    if (!same) return ::testing::AssertionFailure() << "at " << i << ": got " << got[i] << ", want " << want[i];
    got[i] = want[i] = 0;
  }
  return all_close(got, want, tol);
}

inline void check_op(Backend& backend, const BackendVariant& v,
                     const std::function<void(Backend&, std::vector<float>&)>& run, const std::vector<float>& want,
                     Tolerance tol, const std::string& what) {
  std::vector<float> got(want.size()), other(want.size());
  run(backend, got);
  EXPECT_TRUE(close_or_same_special(got, want, tol)) << v.label << ": " << what;
  const auto second = with_threads(v, other_thread_count(v));
  run(*second, other);
  EXPECT_TRUE(bitwise_equal(got, other)) << v.label << " vs " << other_thread_count(v) << " threads: " << what;
}

// A [rows, dim] f32 view whose rows are `stride` floats apart (stride ≥ dim) inside `storage`.
inline TensorView strided_rows(std::vector<float>& storage, int64_t rows, int64_t dim, int64_t stride) {
  TensorView v;
  v.data = reinterpret_cast<std::byte*>(storage.data());
  v.dtype = DType::kF32;
  v.shape = Shape{rows, dim};
  v.strides = Shape{stride, 1};
  return v;
}
inline ConstTensorView to_const(const TensorView& v) {
  ConstTensorView c;
  c.data = v.data;
  c.dtype = v.dtype;
  c.shape = v.shape;
  c.strides = v.strides;
  return c;
}

// Expects `fn` to throw Error(kInvalidArgument) from component `op` whose message contains `text`.
template <typename Fn>
::testing::AssertionResult rejects(Fn&& fn, std::string_view op, std::string_view text) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidArgument || e.component() != op ||
        std::string(e.what()).find(text) == std::string::npos)
      return ::testing::AssertionFailure()
             << "wrong error: " << e.what() << " (code " << error_code_name(e.code()) << ")";
    return ::testing::AssertionSuccess() << e.what();
  }
  return ::testing::AssertionFailure() << "no error; expected [" << op << "] ..." << text << "...";
}

}  // namespace bf::conformance
