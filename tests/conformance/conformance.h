// Cross-backend conformance: every op on every available backend (and, for the CPU, every ISA
// level this machine supports, at 1 and 3 threads) against the scalar reference in src/ops/.
// Adding an op means adding one case file here (tests/conformance/<op>_cases.cc) with
// TEST_P(BackendTest, ...) cases; the glob in tests/CMakeLists.txt picks it up.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "batch_forge/backends/backend.h"
#include "support/all_close.h"

namespace bf::conformance {

using testing::all_close;
using testing::Tolerance;

struct BackendVariant {
  std::string backend;     // "cpu"
  BackendOptions options;  // ISA level and threads for the CPU
  std::string label;       // "cpu_avx512_t3": a valid gtest parameter name
};

// gtest prints parameters in test names and logs: the label, not the bytes.
inline void PrintTo(const BackendVariant& v, std::ostream* os) { *os << v.label; }

// Every backend in available_backends(); for "cpu", each supported ISA × {1, 3} threads.
std::vector<BackendVariant> backend_variants();

class BackendTest : public ::testing::TestWithParam<BackendVariant> {
 protected:
  Backend& backend();  // created on first use, for this test only

 private:
  std::unique_ptr<Backend> backend_;
};

// Seeded normal(0, scale) values.
std::vector<float> random_normal(size_t n, uint64_t seed, float scale = 1.0f);

// A view of a vector as a contiguous f32 tensor.
inline TensorView view_of(std::vector<float>& v, const Shape& shape) {
  return TensorView::contiguous(std::as_writable_bytes(std::span(v)), DType::kF32, shape);
}
inline ConstTensorView const_view_of(const std::vector<float>& v, const Shape& shape) {
  return ConstTensorView::contiguous(std::as_bytes(std::span(v)), DType::kF32, shape);
}

}  // namespace bf::conformance
