// Quantized model files: the aligned safetensors writer (byte-exact with Python's build_file) and
// ModelFile's view of a quantized weight (logical dtype and dims, fp8 scales, a broken map).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/io/model_file.h"
#include "batch_forge/io/safetensors.h"
#include "batch_forge/io/safetensors_writer.h"

namespace bf {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  const fs::path dir = fs::temp_directory_path() / "batch_forge_quant_tests";
  fs::create_directories(dir);
  return dir;
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

std::string as_string(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

TEST(SafetensorsWriter, JsonQuoteMatchesPythonJsonDumps) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_quote("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json_quote(std::string("\x01\x1f\x7f", 3)), std::string(R"("\u0001\u001f)") + "\x7f\"");
  EXPECT_EQ(json_quote(std::string("\0", 1)), R"("\u0000")");
  EXPECT_EQ(json_quote("\xc3\xbc \xf0\x9f\x98\x80"), "\"\xc3\xbc \xf0\x9f\x98\x80\"");  // UTF-8 as is
}

// Python: build_file([("a", arange(3, f32)), ("é\n\"x", zeros(5, u8)), ("b", ones((2, 2), f16)),
// ("e", zeros((0,), i32))], {"z": "q\"\\\x01\x7f", "a": "ü\t"}) — header and size from that call.
TEST(SafetensorsWriter, SameBytesAsPythonBuildFile) {
  const std::vector<float> a = {0.0f, 1.0f, 2.0f};
  const std::vector<uint8_t> odd(5, 0);
  const std::vector<uint16_t> b(4, 0x3C00);
  const std::vector<TensorData> tensors = {
      {{"a", DType::kF32, {3}}, bytes_of(a)},
      {{"\xc3\xa9\n\"x", DType::kU8, {5}}, bytes_of(odd)},
      {{"b", DType::kF16, {2, 2}}, bytes_of(b)},
      {{"e", DType::kI32, {0}}, {}},
  };
  const SafetensorsMetadata metadata = {{"z", "q\"\\\x01\x7f"}, {"a", "\xc3\xbc\t"}};
  const std::vector<std::byte> file = build_safetensors(tensors, metadata);
  const std::string want_json =
      std::string(R"({"__metadata__":{"z":"q\"\\\u0001)") + "\x7f" + R"(","a":")" + "\xc3\xbc" +
      R"(\t"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"__bf_pad_0__":{"dtype":"U8","shape":[52],)" +
      R"("data_offsets":[12,64]},")" + "\xc3\xa9" +
      R"(\n\"x":{"dtype":"U8","shape":[5],"data_offsets":[64,69]},"__bf_pad_1__":{"dtype":"U8","shape":[59],)" +
      R"("data_offsets":[69,128]},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[128,136]},"__bf_pad_2__":)" +
      R"({"dtype":"U8","shape":[56],"data_offsets":[136,192]},"e":{"dtype":"I32","shape":[0],"data_offsets":[192,192]}})";
  ASSERT_EQ(file.size(), 704u);
  const std::string text = as_string(file);
  EXPECT_EQ(text.substr(0, 8), std::string("\xf8\x01\0\0\0\0\0\0", 8));  // N = 504
  EXPECT_EQ(text.substr(8, want_json.size()), want_json);
  EXPECT_EQ(text.substr(8 + want_json.size(), 504 - want_json.size()), std::string(504 - want_json.size(), ' '));

  // And our own reader takes it: every tensor 64-aligned, bytes where they belong.
  const SafetensorsHeader h = parse_safetensors(file, "built");
  EXPECT_EQ(h.data_offset % kSafetensorsAlignment, 0u);
  for (const TensorInfo& t : h.tensors) EXPECT_TRUE(t.name.starts_with("__bf_pad_") || t.begin % 64 == 0) << t.name;
  EXPECT_EQ(std::memcmp(file.data() + h.data_offset + 128, b.data(), 8), 0);
  EXPECT_EQ(h.metadata.at("z"), "q\"\\\x01\x7f");
}

TEST(SafetensorsWriter, RefusesBadSpecsNamingTheTensor) {
  const std::vector<uint8_t> one(1);
  auto refused = [&](std::vector<TensorData> tensors, SafetensorsMetadata metadata = {}) {
    try {
      build_safetensors(tensors, metadata);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      return std::string(e.message());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refused({{{"", DType::kU8, {1}}, bytes_of(one)}}).find("invalid tensor name"), std::string::npos);
  EXPECT_NE(refused({{{"__metadata__", DType::kU8, {1}}, bytes_of(one)}}).find("invalid"), std::string::npos);
  EXPECT_NE(refused({{{"__bf_pad_3__", DType::kU8, {1}}, bytes_of(one)}}).find("reserved"), std::string::npos);
  EXPECT_NE(refused({{{"w", DType::kU8, {1}}, bytes_of(one)}, {{"w", DType::kU8, {1}}, bytes_of(one)}}).find("twice"),
            std::string::npos);
  EXPECT_NE(refused({{{"q", DType::kQ8_0, {1, 32}}, bytes_of(one)}}).find("as U8"), std::string::npos);
  EXPECT_NE(refused({{{"n", DType::kU8, {-1}}, bytes_of(one)}}).find("negative"), std::string::npos);
  EXPECT_NE(refused({}, {{"k", "1"}, {"k", "2"}}).find("twice"), std::string::npos);
}

TEST(SafetensorsWriter, NoPartialFileOnFailure) {
  const fs::path path = temp_dir() / "partial.safetensors";
  fs::remove(path);
  const std::vector<float> v(16, 1.0f);
  {
    SafetensorsWriter w(path, {{"a", DType::kF32, {16}}, {"b", DType::kF32, {16}}}, {});
    w.write_tensor(bytes_of(v));
    EXPECT_EQ(w.next()->name, "b");
    EXPECT_THROW(w.write_tensor(std::as_bytes(std::span(v).first(3))), Error);  // wrong size: a bug
  }  // destroyed uncommitted, as after an exception
  EXPECT_FALSE(fs::exists(path));
  for (const auto& entry : fs::directory_iterator(temp_dir()))
    EXPECT_FALSE(entry.path().filename().string().starts_with("partial.safetensors.tmp")) << entry.path();

  try {
    SafetensorsWriter w(temp_dir() / "no_such_dir" / "x.safetensors", {}, {});
    ADD_FAILURE() << "created a file in a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(e.message().find("no_such_dir"), std::string::npos) << e.what();
  }

  const TensorData t{{"a", DType::kF32, {16}}, bytes_of(v)};
  const uint64_t size = write_safetensors(path, std::span(&t, 1), {{"k", "v"}});
  EXPECT_EQ(size, fs::file_size(path));
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.file_offset(*f.find("a")) % 64, 0u);
}

// A small quantized file: a q8_0 weight [2, 64] (U8 [2, 68]), an fp8 weight [3, 5] with its
// scales, a plain bias.
std::vector<std::byte> quantized_file(const std::string& quant_map, const std::string& scale_name = "f.weight.scale",
                                      std::vector<int64_t> q_dims = {2, 68}) {
  static const std::vector<uint8_t> q(2 * 68, 0), f8(15, 0x38), u(3);
  static const std::vector<float> scales = {1.0f, 2.0f, 3.0f}, bias = {0.5f, 0.5f};
  const std::vector<TensorData> tensors = {
      {{"q.weight", DType::kU8, q_dims}, std::as_bytes(std::span(q)).first(q_dims[0] * q_dims[1])},
      {{"q.bias", DType::kF32, {2}}, bytes_of(bias)},
      {{"f.weight", DType::kF8E4M3, {3, 5}}, bytes_of(f8)},
      {{scale_name, DType::kF32, {3}}, bytes_of(scales)},
  };
  return build_safetensors(tensors, {{std::string(kQuantMetadataKey), quant_map}});
}

fs::path write_file(const std::string& name, const std::vector<std::byte>& bytes) {
  const fs::path path = temp_dir() / name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

const std::string kGoodMap =
    R"({"f.weight":{"scheme":"fp8_e4m3","shape":[3,5]},"q.weight":{"scheme":"q8_0","shape":[2,64]}})";

TEST(QuantizedModelFile, ShowsLogicalDtypesAndHidesScales) {
  const ModelFile m = ModelFile::open(write_file("quantized.safetensors", quantized_file(kGoodMap)));
  ASSERT_EQ(m.tensors().size(), 3u);  // q.weight, q.bias, f.weight; the scale is not a tensor
  EXPECT_EQ(m.quantized_count(), 2u);
  const TensorInfo& q = m.tensor("q.weight");
  EXPECT_EQ(q.dtype, DType::kQ8_0);
  EXPECT_EQ(q.dims, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(q.nbytes(), 136u);
  EXPECT_EQ(m.file().view(q).shape, Shape({2, 64}));  // a block view over the stored bytes
  EXPECT_EQ(m.quantized("q.weight")->stored->dtype, DType::kU8);
  EXPECT_EQ(m.scale_tensor("q.weight"), nullptr);

  const TensorInfo& f = m.tensor("f.weight");
  EXPECT_EQ(f.dtype, DType::kF8E4M3);
  const TensorInfo* scale = m.scale_tensor("f.weight");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->name, "f.weight.scale");
  EXPECT_EQ(m.file().view(*scale).as<const float>()[2], 3.0f);
  EXPECT_EQ(m.quantized("f.weight")->scheme, "fp8_e4m3");
  EXPECT_THROW(m.tensor("f.weight.scale"), Error);
  EXPECT_EQ(m.quantized("q.bias"), nullptr);

  const std::vector<ExpectedTensor> expected = {{"q.weight", {2, 64}, {DType::kF32, DType::kQ8_0}},
                                                {"q.bias", {2}, {DType::kF32}},
                                                {"f.weight", {3, 5}, {DType::kF8E4M3}}};
  EXPECT_TRUE(m.check_tensors(expected).empty());
  const std::vector<ExpectedTensor> float_only = {
      {"q.weight", {2, 64}, {DType::kF32}}, {"q.bias", {2}, {DType::kF32}}, {"f.weight", {3, 5}, {DType::kF8E4M3}}};
  const auto problems = m.check_tensors(float_only);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "tensor 'q.weight' is q8_0; expected f32");
}

TEST(QuantizedModelFile, RefusesAMapThatDoesNotMatchTheFile) {
  const std::pair<std::vector<std::byte>, std::string> cases[] = {
      {quantized_file("not json"), "not valid JSON"},
      {quantized_file("[1]"), "expected an object"},
      {quantized_file(R"({"q.weight":{"scheme":"q5_0","shape":[2,64]}})"), "has scheme \"q5_0\""},
      {quantized_file(R"({"q.weight":{"scheme":"q8_0","shape":[2]}})"), "expected [n, k]"},
      {quantized_file(R"({"q.weight":{"scheme":"q8_0"}})"), "must be an object with"},
      {quantized_file(R"({"nope":{"scheme":"q8_0","shape":[2,64]}})"), "names no tensor"},
      {quantized_file(R"({"q.weight":{"scheme":"q8_0","shape":[2,48]}})"), "not a whole number of q8_0 blocks"},
      {quantized_file(R"({"q.weight":{"scheme":"q4_0","shape":[2,64]}})"), "must be stored as U8 [2, 36]"},
      {quantized_file(R"({"q.bias":{"scheme":"q8_0","shape":[1,32]}})"), "must be stored as U8 [1, 34]"},
      {quantized_file(kGoodMap, "f.weight.scales"), "needs its scales in 'f.weight.scale'"},
      {quantized_file(kGoodMap, "f.weight.scale", {1, 136}), "the file has u8 [1, 136]"},
  };
  for (const auto& [bytes, want] : cases) {
    try {
      ModelFile::open(write_file("bad_quant.safetensors", bytes));
      ADD_FAILURE() << "accepted; wanted: " << want;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidFile) << e.what();
      EXPECT_NE(e.message().find(want), std::string::npos) << e.what() << "\nwanted: " << want;
      EXPECT_NE(e.message().find("batch_forge.quant"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace bf
