#include <gtest/gtest.h>

#include <vector>

#include "batch_forge/core/dtype.h"
#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "batch_forge/core/shape.h"
#include "batch_forge/core/tensor.h"

namespace bf {
namespace {

TEST(DType, SafetensorsNamesRoundTrip) {
  for (int i = 0; i < kDTypeCount; ++i) {
    const auto dt = static_cast<DType>(i);
    const auto& info = dtype_info(dt);
    EXPECT_EQ(dtype_from_name(info.name), dt);
    if (info.safetensors_name.empty()) {
      EXPECT_TRUE(is_block_quantized(dt)) << info.name;
    } else {
      EXPECT_EQ(dtype_from_safetensors(info.safetensors_name), dt);
    }
  }
  EXPECT_FALSE(dtype_from_safetensors("F33"));
  EXPECT_FALSE(dtype_from_safetensors("q4_0"));  // block types are not safetensors dtypes
}

TEST(DType, BlockTypesHaveTheDocumentedLayouts) {
  EXPECT_EQ(dtype_bytes(DType::kQ8_0, 64), 68u);  // 2 blocks × (32 int8 + f16 scale)
  EXPECT_EQ(dtype_bytes(DType::kQ4_0, 64), 36u);  // 2 blocks × (16 bytes + f16 scale)
  EXPECT_EQ(dtype_bytes(DType::kNF4, 128), 68u);  // 2 blocks × (32 bytes + f16 absmax)
  EXPECT_FALSE(dtype_bytes(DType::kQ4_0, 33));    // not a whole number of blocks
  EXPECT_EQ(dtype_bytes(DType::kBF16, 3), 6u);
  EXPECT_FALSE(dtype_bytes(DType::kF64, uint64_t{1} << 62));  // overflows 64 bits
}

TEST(Shape, NumelStridesAndOverflow) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(contiguous_strides(s), (Shape{12, 4, 1}));
  EXPECT_EQ(Shape{}.numel(), 1);  // a scalar
  EXPECT_EQ(Shape{}.to_string(), "[]");
  EXPECT_EQ((Shape{5, 0}).numel(), 0);
  EXPECT_FALSE((Shape{int64_t{1} << 40, int64_t{1} << 40}).checked_numel());
  const std::vector<int64_t> too_many(kMaxRank + 1, 1);
  EXPECT_THROW(Shape{std::span<const int64_t>(too_many)}, Error);
  EXPECT_THROW((Shape{2, -1}), Error);
}

TEST(TensorView, ContiguousViewChecksSizeAndType) {
  std::vector<float> data(6);
  auto bytes = std::as_writable_bytes(std::span(data));
  const TensorView v = TensorView::contiguous(bytes, DType::kF32, Shape{2, 3});
  EXPECT_EQ(v.as<float>(), data.data());
  EXPECT_TRUE(v.is_contiguous());
  EXPECT_THROW(TensorView::contiguous(bytes, DType::kF32, Shape{2, 2}), Error);
  EXPECT_THROW(v.as<double>(), Error);
  std::vector<std::byte> q(2 * 18);  // two q4_0 blocks: one row of 64 elements
  const TensorView qv = TensorView::contiguous(q, DType::kQ4_0, Shape{1, 64});
  EXPECT_EQ(qv.strides, (Shape{2, 1}));  // strides in blocks
}

TEST(Error, MessageNamesComponentAndKeepsCode) {
  const Error e(ErrorCode::kInvalidFile, "safetensors", "x.st: bad");
  EXPECT_STREQ(e.what(), "[safetensors] x.st: bad");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidFile);
  EXPECT_EQ(e.message(), "x.st: bad");
  try {
    BF_CHECK(1 + 1 == 3, "arithmetic ", 42);
    FAIL() << "BF_CHECK did not throw";
  } catch (const Error& c) {
    EXPECT_EQ(c.code(), ErrorCode::kInternal);
    EXPECT_NE(std::string(c.what()).find("arithmetic 42"), std::string::npos) << c.what();
  }
}

TEST(Log, SinkIsReplaceableAndLevelFilters) {
  std::vector<std::pair<LogLevel, std::string>> seen;
  LogSink previous = set_log_sink([&](LogLevel l, std::string_view m) { seen.emplace_back(l, std::string(m)); });
  const LogLevel old_level = log_level();
  set_log_level(LogLevel::kWarn);
  BF_LOG(kInfo, "dropped ", 1);
  BF_LOG(kError, "kept ", 2);
  set_log_level(old_level);
  set_log_sink(std::move(previous));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, LogLevel::kError);
  EXPECT_EQ(seen[0].second, "kept 2");
}

}  // namespace
}  // namespace bf
