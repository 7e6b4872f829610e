#include "batch_forge/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "batch_forge/core/error.h"
#include "batch_forge/io/mapped_file.h"

namespace bf {
namespace {

namespace fs = std::filesystem;

// [u64 little-endian header length][header][data], the header written by hand so that tests can
// break any rule (repeated keys, bad numbers, bad UTF-8).
std::vector<std::byte> file_bytes(std::string_view header, std::string_view data = {}) {
  std::vector<std::byte> out(8);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(n >> (8 * i));
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (char c : data) out.push_back(static_cast<std::byte>(c));
  return out;
}

SafetensorsHeader parse(std::string_view header, std::string_view data = {}) {
  return parse_safetensors(file_bytes(header, data), "t.st");
}

// The message of the kInvalidFile error that parsing throws ("" when it does not throw).
std::string rejection(std::string_view header, std::string_view data = {}) {
  try {
    parse(header, data);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidFile) << e.what();
    EXPECT_EQ(e.component(), "safetensors");
    EXPECT_TRUE(e.message().starts_with("t.st: ")) << e.message();
    return e.message();
  }
  ADD_FAILURE() << "accepted: " << header;
  return "";
}

#define EXPECT_REJECTED(header, data, substring)                               \
  do {                                                                         \
    const std::string msg_ = rejection(header, data);                          \
    EXPECT_NE(msg_.find(substring), std::string::npos) << "message: " << msg_; \
  } while (0)

// A file under the system temp dir, unique per process and test, removed at scope exit.
class TempFile {
 public:
  explicit TempFile(const std::vector<std::byte>& bytes) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            cat("bf_safetensors_test_", ::getpid(), "_", test->test_suite_name(), "_", test->name(), ".st");
    std::ofstream(path_, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { fs::remove(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s(values.size() * sizeof(float), '\0');
  std::memcpy(s.data(), values.begin(), s.size());
  return s;
}

// The [begin, end) address range of the mapping of `path` in /proc/self/maps, or {0, 0}.
std::pair<uintptr_t, uintptr_t> mapping_of(const fs::path& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const std::string target = fs::canonical(path).string();
  while (std::getline(maps, line)) {
    if (!line.ends_with(target)) continue;
    std::istringstream in(line);
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    in >> std::hex >> begin >> dash >> end;
    return {begin, end};
  }
  return {0, 0};
}

// ---- Accepted files ---------------------------------------------------------------------------

TEST(Safetensors, ParsesTensorsAndSortsThemByOffset) {
  const SafetensorsHeader h = parse(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                                    R"("a":{"dtype":"I16","shape":[1,2],"data_offsets":[0,4]}})",
                                    std::string(12, '\0'));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[0].dtype, DType::kI16);
  EXPECT_EQ(h.tensors[0].dims, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].begin, 4u);
  EXPECT_EQ(h.tensors[1].end, 12u);
  EXPECT_EQ(h.data_offset, 8 + h.header_bytes);
  EXPECT_EQ(h.data_bytes, 12u);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(Safetensors, AcceptsEveryDtypeName) {
  constexpr std::pair<const char*, size_t> kTypes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U64", 8}, {"U32", 4},  {"U16", 2},     {"U8", 1},      {"BOOL", 1}};
  for (const auto& [name, size] : kTypes) {
    SCOPED_TRACE(name);
    const SafetensorsHeader h =
        parse(cat(R"({"x":{"dtype":")", name, R"(","shape":[3],"data_offsets":[0,)", 3 * size, "]}}"),
              std::string(3 * size, '\0'));
    ASSERT_EQ(h.tensors.size(), 1u);
    EXPECT_EQ(dtype_info(h.tensors[0].dtype).safetensors_name, name);
  }
}

TEST(Safetensors, AcceptsEmptyHeaderAndMetadataOnly) {
  EXPECT_TRUE(parse("{}").tensors.empty());
  const SafetensorsHeader h = parse(R"({"__metadata__":{"format":"pt","k":""}})");
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("k"), "");
}

TEST(Safetensors, AcceptsZeroSizeTensorsAndScalars) {
  const SafetensorsHeader h = parse(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                                    R"("z0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                                    R"("z1":{"dtype":"F16","shape":[3,0],"data_offsets":[4,4]},)"
                                    R"("z2":{"dtype":"I8","shape":[0,9223372036854775807],"data_offsets":[4,4]},)"
                                    R"("u":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                                    R"("z3":{"dtype":"U8","shape":[0],"data_offsets":[6,6]}})",
                                    std::string(6, '\0'));
  ASSERT_EQ(h.tensors.size(), 6u);
  EXPECT_EQ(h.tensors[0].name, "z0");  // [0, 0) sorts before [0, 4)
  EXPECT_EQ(h.tensors[1].name, "s");
  EXPECT_TRUE(h.tensors[1].dims.empty());
  EXPECT_EQ(h.tensors[5].name, "z3");
}

TEST(Safetensors, AcceptsHeaderPaddedWithWhitespace) {
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(100, ' ');  // exporters pad so that 8 + N is a multiple of 64
  const SafetensorsHeader h = parse(header, f32_bytes({1, 2}));
  EXPECT_EQ(h.header_bytes, header.size());
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(parse("\n\t {} \r\n").tensors.size(), 0u);
}

TEST(Safetensors, AcceptsUtf8NamesAndSignedZeroDims) {
  const SafetensorsHeader h = parse(R"({"poids.é\u00e9😀":{"dtype":"U8","shape":[-0, 5],"data_offsets":[0,0]}})");
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].name, "poids.éé😀");
  EXPECT_EQ(h.tensors[0].dims, (std::vector<int64_t>{0, 5}));
}

// ---- Rejections not covered by the corpus (tests/corpus/) -------------------------------------

TEST(Safetensors, RejectsFraming) {
  EXPECT_REJECTED("", "", "is not valid JSON");  // N = 0: an empty header
  try {
    parse_safetensors({}, "t.st");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file is 0 bytes, shorter than"), std::string::npos) << e.what();
  }
  std::vector<std::byte> huge = file_bytes("{}");
  huge[7] = std::byte{0xFF};  // N ≈ 2^64: must not wrap when added to 8
  EXPECT_THROW(parse_safetensors(huge, "t.st"), Error);
}

TEST(Safetensors, RejectsMalformedUtf8DistinctlyFromBadJson) {
  EXPECT_REJECTED("{\"\xC0\xAF\":1}", "", "not valid UTF-8 (byte 2 of the header)");  // overlong '/'
  EXPECT_REJECTED("{\"\xED\xA0\x80\":1}", "", "not valid UTF-8");                     // encoded surrogate
  EXPECT_REJECTED("{\"\xF4\x90\x80\x80\":1}", "", "not valid UTF-8");                 // past U+10FFFF
  EXPECT_REJECTED("{\"\xE2\x82", "", "not valid UTF-8");                              // cut sequence
  EXPECT_REJECTED(R"({"\ud800":1})", "", "not valid JSON");                           // escaped lone surrogate
  EXPECT_REJECTED("{\"a\x01\":1}", "", "not valid JSON");                             // raw control character
  EXPECT_REJECTED("{} {}", "", "not valid JSON");
  EXPECT_REJECTED(std::string_view("{}\0", 3), "", "not valid JSON: NUL byte at byte 2");
  EXPECT_REJECTED(std::string_view("{\"\0\":1}", 6), "", "not valid JSON: NUL byte at byte 2");
}

TEST(Safetensors, RejectsNumbersThatAreNotPlainIntegers) {
  constexpr const char* kDims[] = {"2.0", "1e1", "true", "\"2\"", "null", "18446744073709551616"};
  for (const char* dim : kDims) {
    SCOPED_TRACE(dim);
    EXPECT_REJECTED(cat(R"({"w":{"dtype":"U8","shape":[)", dim, R"(],"data_offsets":[0,2]}})"), "xx",
                    "shape dimension 0 is not an integer");
  }
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2.0]}})", "xx",
                  "data_offsets[1] is not a non-negative integer");
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":{"begin":0}}})", "xx",
                  "\"data_offsets\" must be [begin, end], got an object");
}

TEST(Safetensors, RejectsOverflowingShapes) {
  // Zero-size, but the other dims still multiply past int64: strides would overflow.
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", "",
                  "element count overflows int64");
  // 2^62 elements fit int64, but 2^62 × 8 bytes do not fit 64 bits.
  EXPECT_REJECTED(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", "01234567",
                  "byte size overflows 64 bits for dtype F64");
}

TEST(Safetensors, ZeroSizeTensorInsideAnotherIsAnOverlap) {
  EXPECT_REJECTED(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                  R"("z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
                  "abcd", "tensors 'a' [0, 4) and 'z' [2, 2) overlap");
}

TEST(Safetensors, RejectsARangeThatEndsPastTheDataEvenWhenTheSizeMatches) {
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "abcd",
                  "tensor 'w' ends at byte 6 but the data section has 4");
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[9,9]}})", "", "ends at byte 9");
}

TEST(Safetensors, RejectsNestedDuplicatesWithWhereTheyAre) {
  EXPECT_REJECTED(R"({"__metadata__":{},"__metadata__":{}})", "", "\"__metadata__\" appears twice");
  EXPECT_REJECTED(R"({"w":{"dtype":"U8","shape":[{"x":1,"x":2}],"data_offsets":[0,0]}})", "",
                  "key 'x' appears twice in one object inside 'w'");
}

TEST(Safetensors, EscapesAndShortensNamesInMessages) {
  EXPECT_REJECTED(R"({"a\nb":{"dtype":"Q9","shape":[],"data_offsets":[0,0]}})", "",
                  "tensor 'a\\x0ab' has unknown dtype");
  const std::string long_name(5000, 'n');
  const std::string msg = rejection(cat(R"({")", long_name, R"(":{"dtype":"Q9","shape":[],"data_offsets":[0,0]}})"));
  EXPECT_NE(msg.find("… (5000 bytes)"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u);
}

TEST(Safetensors, SurvivesDeepNesting) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_REJECTED(cat(R"({"w":)", deep, "}"), "", "tensor 'w' is an array");
  EXPECT_REJECTED(std::string(100000, '['), "", "not valid JSON");
}

// ---- Mapped files and views -------------------------------------------------------------------

TEST(MappedFile, MapsAndMovesAFile) {
  const TempFile tmp(file_bytes("{}", "xyz"));
  MappedFile a = MappedFile::open(tmp.path());
  ASSERT_EQ(a.size(), 13u);
  EXPECT_EQ(static_cast<char>(a.bytes()[12]), 'z');
  const std::byte* p = a.bytes().data();
  MappedFile b = std::move(a);
  EXPECT_EQ(b.bytes().data(), p);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  b = MappedFile();
  EXPECT_TRUE(b.bytes().empty());
}

TEST(MappedFile, EmptyFileIsAnEmptySpan) {
  const TempFile tmp(std::vector<std::byte>{});
  const MappedFile f = MappedFile::open(tmp.path());
  EXPECT_EQ(f.size(), 0u);
  EXPECT_TRUE(f.bytes().empty());
}

TEST(MappedFile, ReportsMissingFilesAndDirectories) {
  try {
    MappedFile::open("/nonexistent/batch_forge/model.st");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.component(), "mmap");
    EXPECT_NE(e.message().find("/nonexistent/batch_forge/model.st: cannot open: No such file or directory"),
              std::string::npos)
        << e.message();
  }
  try {
    MappedFile::open(fs::temp_directory_path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(e.message().find("is a directory"), std::string::npos) << e.message();
  }
}

TEST(SafetensorsFile, ViewsPointIntoTheMapping) {
  const std::string data = f32_bytes({1, 2, 3, 4, 5, 6}) + "\x07\x08";
  std::string header = R"({"__metadata__":{"m":"v"},)"
                       R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                       R"("b":{"dtype":"U8","shape":[2],"data_offsets":[24,26]},)"
                       R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[26,26]}})";
  // Pad so that the data starts 64-byte aligned: reading a float through the view needs it.
  header.append((64 - (8 + header.size()) % 64) % 64, ' ');
  const TempFile tmp(file_bytes(header, data));
  const SafetensorsFile file = SafetensorsFile::open(tmp.path());
  EXPECT_EQ(file.path(), tmp.path().string());
  EXPECT_EQ(file.metadata().at("m"), "v");
  EXPECT_EQ(file.find("missing"), nullptr);
  ASSERT_NE(file.find("w"), nullptr);

  const auto [map_begin, map_end] = mapping_of(tmp.path());
  ASSERT_NE(map_begin, 0u) << "no mapping of " << tmp.path() << " in /proc/self/maps";
  for (const char* name : {"w", "b"}) {
    SCOPED_TRACE(name);
    const TensorInfo& t = *file.find(name);
    const std::span<const std::byte> bytes = file.data(t);
    const auto addr = reinterpret_cast<uintptr_t>(bytes.data());
    EXPECT_GE(addr, map_begin);
    EXPECT_LE(addr + bytes.size(), map_end);
    EXPECT_EQ(std::memcmp(bytes.data(), data.data() + t.begin, bytes.size()), 0);
    EXPECT_EQ(file.file_offset(t), file.header().data_offset + t.begin);
    EXPECT_EQ(file.view(t).data, bytes.data());
  }
  const ConstTensorView w = file.view(*file.find("w"));
  EXPECT_EQ(w.dtype, DType::kF32);
  EXPECT_EQ(w.shape, (Shape{2, 3}));
  EXPECT_EQ(w.strides, (Shape{3, 1}));
  EXPECT_EQ(w.as<const float>()[5], 6.0f);
  EXPECT_EQ(file.view(*file.find("e")).numel(), 0);
}

TEST(SafetensorsFile, RankAboveTheViewLimitIsUnsupported) {
  const TempFile tmp(file_bytes(R"({"r9":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", "x"));
  const SafetensorsFile file = SafetensorsFile::open(tmp.path());
  EXPECT_EQ(file.data(file.tensors()[0]).size(), 1u);
  try {
    (void)file.view(file.tensors()[0]);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(e.message().find("tensor 'r9' has rank 9"), std::string::npos) << e.message();
  }
}

TEST(SafetensorsFile, ReadsAFileWrittenByTheReferenceLibrary) {
  const char* root = std::getenv("BF_SOURCE_DIR");
  const fs::path python = fs::path(root != nullptr ? root : ".") / ".venv" / "bin" / "python";
  if (!fs::exists(python)) GTEST_SKIP() << "no " << python;
  const TempFile out(std::vector<std::byte>{});
  const std::string script =
      cat("import numpy as np\n"
          "from safetensors.numpy import save_file\n"
          "save_file({'a.w': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.array(7, dtype=np.int64),\n"
          "           'z': np.zeros((0, 4), dtype=np.float16)}, r'",
          out.path().string(), "', metadata={'format': 'np'})\n");
  const std::string cmd = cat("'", python.string(), "' -c \"", script, "\" 2>/dev/null");
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "python with safetensors and numpy is not available";

  const SafetensorsFile file = SafetensorsFile::open(out.path());
  EXPECT_EQ(file.metadata().at("format"), "np");
  ASSERT_EQ(file.tensors().size(), 3u);
  const ConstTensorView a = file.view(*file.find("a.w"));
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(a.as<const float>()[4], 4.0f);
  const ConstTensorView b = file.view(*file.find("b"));
  EXPECT_EQ(b.shape.rank(), 0);
  EXPECT_EQ(b.as<const int64_t>()[0], 7);
  EXPECT_EQ(file.find("z")->nbytes(), 0u);
}

}  // namespace
}  // namespace bf
