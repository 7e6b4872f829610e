#include "batch_forge/models/model.h"

#include <gtest/gtest.h>

#include "batch_forge/core/error.h"
#include "models/transformer/config.h"
#include "support/safetensors_writer.h"

namespace bf {
namespace {

nlohmann::json tiny_config() {
  return {{"vocab_size", 37}, {"dim", 12},       {"n_layers", 2},    {"n_heads", 4},
          {"n_kv_heads", 2},  {"head_dim", 6},   {"hidden_dim", 20}, {"norm", "rms"},
          {"norm_eps", 1e-5}, {"mlp", "swiglu"}, {"max_seq_len", 64}};
}

std::vector<testing::RawTensor> tensors_for(const nlohmann::json& config) {
  std::vector<testing::RawTensor> out;
  for (const ExpectedTensor& e : transformer::Config::parse(config, "test").expected_tensors())
    out.push_back(testing::f32_tensor(e.name, e.dims));
  return out;
}

std::filesystem::path write_model(const std::string& name, const nlohmann::json& config,
                                  const std::vector<testing::RawTensor>& tensors,
                                  const std::string& family = "transformer") {
  return testing::write_temp_file(name, testing::safetensors_bytes(tensors, {{"batch_forge.format", "1"},
                                                                             {"batch_forge.family", family},
                                                                             {"batch_forge.config", config.dump()}}));
}

std::string error_of(const std::filesystem::path& path) {
  try {
    open_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TransformerConfig, ImpliesTheDocumentedTensors) {
  const auto c = transformer::Config::parse(tiny_config(), "test");
  const auto tensors = c.expected_tensors();
  // embed + 2 × (2 norms + 4 attn + 3 mlp) + final norm + lm_head
  EXPECT_EQ(tensors.size(), 1u + 2 * 9 + 1 + 1);
  EXPECT_EQ(tensors[0].name, "embed.weight");
  EXPECT_EQ(tensors[0].dims, (std::vector<int64_t>{37, 12}));
  bool found_k = false;
  for (const auto& t : tensors)
    if (t.name == "layers.1.attn.key_proj.weight") {
      found_k = true;
      EXPECT_EQ(t.dims, (std::vector<int64_t>{12, 12}));  // n_kv_heads·head_dim × dim, (out, in)
    }
  EXPECT_TRUE(found_k);

  auto cfg = tiny_config();
  cfg["norm"] = "layer";
  cfg["mlp"] = "gelu";
  cfg["qkv_bias"] = cfg["out_bias"] = cfg["mlp_bias"] = cfg["tie_embeddings"] = true;
  // embed + 2 × (2 norms × 2 + 4 attn × 2 + 2 mlp × 2) + final norm × 2, no lm_head
  EXPECT_EQ(transformer::Config::parse(cfg, "test").expected_tensors().size(), 1u + 2 * 16 + 2);
}

TEST(TransformerConfig, BadFieldsAreNamed) {
  auto expect_field_error = [](nlohmann::json cfg, const std::string& text) {
    try {
      transformer::Config::parse(cfg, "m.st");
      FAIL() << "accepted " << cfg.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  auto cfg = tiny_config();
  cfg.erase("dim");
  expect_field_error(cfg, "missing field 'dim'");
  cfg = tiny_config();
  cfg["n_kv_heads"] = 3;
  expect_field_error(cfg, "field 'n_kv_heads' is 3; it must divide n_heads = 4");
  cfg = tiny_config();
  cfg["norm"] = "batch";
  expect_field_error(cfg, "field 'norm' is \"batch\"; expected \"rms\" or \"layer\"");
  cfg = tiny_config();
  cfg["n_layers"] = "2";
  expect_field_error(cfg, "field 'n_layers' is \"2\"; expected an integer");
  cfg = tiny_config();
  cfg["head_dim"] = 5;
  expect_field_error(cfg, "even head_dim");
  cfg = tiny_config();
  cfg["n_experts"] = 8;
  expect_field_error(cfg, "unknown field 'n_experts'");
}

TEST(OpenModel, AcceptsAMatchingFile) {
  const auto path = write_model("good.safetensors", tiny_config(), tensors_for(tiny_config()));
  const ModelFile m = open_model(path);
  EXPECT_EQ(m.family(), "transformer");
  EXPECT_TRUE(validate_model(m).empty());
}

TEST(OpenModel, ListsEveryMismatchAtOnce) {
  auto tensors = tensors_for(tiny_config());
  std::erase_if(tensors, [](const auto& t) { return t.name == "layers.0.mlp.up_proj.weight"; });
  for (auto& t : tensors)
    if (t.name == "final_norm.weight") t = testing::f32_tensor(t.name, {13});
  tensors.push_back(testing::f32_tensor("layers.2.attn_norm.weight", {12}));
  const std::string error = error_of(write_model("bad.safetensors", tiny_config(), tensors));
  EXPECT_NE(error.find("3 problems"), std::string::npos) << error;
  EXPECT_NE(error.find("missing tensor 'layers.0.mlp.up_proj.weight' [20, 12]"), std::string::npos) << error;
  EXPECT_NE(error.find("tensor 'final_norm.weight' has shape [13]; the config implies [12]"), std::string::npos)
      << error;
  EXPECT_NE(error.find("unexpected tensor 'layers.2.attn_norm.weight'"), std::string::npos) << error;
}

TEST(OpenModel, UnknownFamilyAndPlainFilesAreRefused) {
  const auto path = write_model("fam.safetensors", tiny_config(), tensors_for(tiny_config()), "rnn");
  try {
    open_model(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("family 'rnn' is not supported"), std::string::npos) << e.what();
  }
  const auto plain = testing::write_temp_file("plain_model.safetensors", testing::safetensors_bytes({}));
  EXPECT_NE(error_of(plain).find("not a batch_forge model"), std::string::npos);
}

}  // namespace
}  // namespace bf
