// Hyperparameters of the decoder-only Transformer LM family, as the exporter writes them into
// batch_forge.config (docs/model-format.md, "Family transformer"). Parsed in one place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "batch_forge/io/model_file.h"

namespace bf::transformer {

enum class NormKind { kRms, kLayer };
enum class MlpKind { kSwiGlu, kGelu };

struct Config {
  int64_t vocab_size = 0;
  int64_t dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t hidden_dim = 0;
  NormKind norm = NormKind::kRms;
  double norm_eps = 1e-5;
  MlpKind mlp = MlpKind::kSwiGlu;
  bool qkv_bias = false;
  bool out_bias = false;
  bool mlp_bias = false;
  bool tie_embeddings = false;
  double rope_theta = 10000.0;
  int64_t max_seq_len = 0;

  // Throws Error(kInvalidFile, "config") naming the source, the field and the rule; unknown
  // fields are refused too, so a typo in an exporter never goes unnoticed.
  static Config parse(const nlohmann::json& json, std::string_view source);

  // Every tensor this config implies, with its shape (docs/model-format.md's table).
  std::vector<ExpectedTensor> expected_tensors() const;
  std::string describe() const;
};

}  // namespace bf::transformer
