// JAX parity harness, C++ side. python -m batch_forge.fixtures writes, at test time, a fixture
// file per op or model into <build>/fixtures/: inputs (tensors named input.*), JAX's outputs
// (output.*), and metadata with the op's parameters and the tolerance it is held to. A test loads
// the fixture, runs the engine on the inputs and compares with all_close().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "batch_forge/io/safetensors.h"
#include "support/all_close.h"

namespace bf::parity {

using testing::all_close;
using testing::Tolerance;

class Fixture {
 public:
  // Loads <BF_BINARY_DIR>/fixtures/<name>.safetensors. Throws Error naming the path when missing.
  static Fixture load(std::string_view name);

  const std::string& op() const { return op_; }
  const nlohmann::json& params() const { return params_; }
  Tolerance tolerance() const { return tolerance_; }

  // Tensors as f32 copies, with their dims; throws Error naming the fixture and tensor.
  std::vector<float> input(std::string_view name, std::vector<int64_t>* dims = nullptr) const;
  std::vector<float> output(std::string_view name, std::vector<int64_t>* dims = nullptr) const;

 private:
  explicit Fixture(SafetensorsFile file);
  std::vector<float> read_f32(const std::string& tensor, std::vector<int64_t>* dims) const;

  SafetensorsFile file_;
  std::string op_;
  nlohmann::json params_;
  Tolerance tolerance_;
};


}  // namespace bf::parity
