#include "batch_forge/io/model_file.h"

#include <gtest/gtest.h>

#include "batch_forge/core/error.h"
#include "support/safetensors_writer.h"

namespace bf {
namespace {

using testing::f32_tensor;
using testing::safetensors_bytes;
using testing::write_temp_file;

std::map<std::string, std::string> v1_meta(const std::string& version = "1") {
  return {
      {"batch_forge.format", version}, {"batch_forge.family", "transformer"}, {"batch_forge.config", "{\"dim\": 4}"}};
}

TEST(ModelFile, PlainSafetensorsFileHasNoModelMetadata) {
  const auto path = write_temp_file("plain.safetensors", safetensors_bytes({f32_tensor("w", {2, 2})}));
  const ModelFile m = ModelFile::open(path);
  EXPECT_FALSE(m.has_model_metadata());
  ASSERT_EQ(m.tensors().size(), 1u);
  EXPECT_EQ(m.tensor("w").dims, (std::vector<int64_t>{2, 2}));
  EXPECT_THROW(m.tensor("missing"), Error);
}

TEST(ModelFile, ReadsV1MetadataAndSkipsPaddingTensors) {
  testing::RawTensor pad{"__bf_pad_0__", "U8", {3}, {0, 0, 0}};
  const auto path = write_temp_file(
      "v1.safetensors", safetensors_bytes({f32_tensor("a", {2}), pad, f32_tensor("b", {1})}, v1_meta("1.2")));
  const ModelFile m = ModelFile::open(path);
  EXPECT_TRUE(m.has_model_metadata());
  EXPECT_EQ(m.format_version(), "1.2");
  EXPECT_EQ(m.family(), "transformer");
  EXPECT_EQ(m.config().at("dim"), 4);
  ASSERT_EQ(m.tensors().size(), 2u);
  EXPECT_EQ(m.padding_count(), 1u);
  EXPECT_EQ(m.padding_bytes(), 3u);
  EXPECT_THROW(m.tensor("__bf_pad_0__"), Error);
}

TEST(ModelFile, RefusesANewerMajorFormat) {
  const auto path = write_temp_file("v2.safetensors", safetensors_bytes({f32_tensor("a", {2})}, v1_meta("2")));
  try {
    ModelFile::open(path);
    FAIL() << "format 2 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("newer than this build reads"), std::string::npos) << e.what();
  }
}

TEST(ModelFile, RejectsBrokenMetadataWithNamedRule) {
  auto expect_rejected = [](const std::string& name, std::map<std::string, std::string> meta, const std::string& rule) {
    const auto path = write_temp_file(name, safetensors_bytes({f32_tensor("a", {2})}, meta));
    try {
      ModelFile::open(path);
      FAIL() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidFile) << e.what();
      EXPECT_NE(std::string(e.what()).find(rule), std::string::npos) << e.what();
    }
  };
  auto meta = v1_meta();
  meta["batch_forge.format"] = "one";
  expect_rejected("bad_version.safetensors", meta, "expected a version like");
  meta = v1_meta();
  meta.erase("batch_forge.family");
  expect_rejected("no_family.safetensors", meta, "no batch_forge.family");
  meta = v1_meta();
  meta["batch_forge.config"] = "{not json";
  expect_rejected("bad_config.safetensors", meta, "batch_forge.config is not valid JSON");
  meta["batch_forge.config"] = "[1, 2]";
  expect_rejected("config_array.safetensors", meta, "expected an object");
}

TEST(ModelFile, CheckTensorsReportsEveryProblemAtOnce) {
  const auto path = write_temp_file("check.safetensors", safetensors_bytes({f32_tensor("ok", {2, 2}),
                                                                            f32_tensor("wrong_shape", {3}),
                                                                            {"wrong_dtype", "I32", {1}, {0, 0, 0, 0}},
                                                                            f32_tensor("extra", {1})}));
  const ModelFile m = ModelFile::open(path);
  const std::vector<DType> f32 = {DType::kF32};
  const std::vector<ExpectedTensor> expected = {
      {"ok", {2, 2}, f32}, {"wrong_shape", {4}, f32}, {"wrong_dtype", {1}, f32}, {"missing", {5}, f32}};
  const auto problems = m.check_tensors(expected);
  ASSERT_EQ(problems.size(), 4u);
  auto mentions = [&](const std::string& text) {
    for (const auto& p : problems)
      if (p.find(text) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(mentions("tensor 'wrong_shape' has shape [3]; the config implies [4]"));
  EXPECT_TRUE(mentions("tensor 'wrong_dtype' is i32; expected f32"));
  EXPECT_TRUE(mentions("missing tensor 'missing' [5]"));
  EXPECT_TRUE(mentions("unexpected tensor 'extra' [1]"));
}

}  // namespace
}  // namespace bf
