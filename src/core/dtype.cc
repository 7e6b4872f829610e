#include "batch_forge/core/dtype.h"

#include <array>

namespace bf {
namespace {

constexpr std::array<DTypeInfo, kDTypeCount> kInfos = {{
    {"f64", "F64", 1, 8, true},
    {"f32", "F32", 1, 4, true},
    {"f16", "F16", 1, 2, true},
    {"bf16", "BF16", 1, 2, true},
    {"f8_e4m3", "F8_E4M3", 1, 1, true},
    {"f8_e5m2", "F8_E5M2", 1, 1, true},
    {"i64", "I64", 1, 8, false},
    {"i32", "I32", 1, 4, false},
    {"i16", "I16", 1, 2, false},
    {"i8", "I8", 1, 1, false},
    {"u64", "U64", 1, 8, false},
    {"u32", "U32", 1, 4, false},
    {"u16", "U16", 1, 2, false},
    {"u8", "U8", 1, 1, false},
    {"bool", "BOOL", 1, 1, false},
    {"q8_0", "", 32, 34, true},
    {"q4_0", "", 32, 18, true},
    {"nf4", "", 64, 34, true},
}};

}  // namespace

const DTypeInfo& dtype_info(DType dt) { return kInfos[static_cast<size_t>(dt)]; }

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (int i = 0; i < kDTypeCount; ++i)
    if (!kInfos[i].safetensors_name.empty() && kInfos[i].safetensors_name == name) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (int i = 0; i < kDTypeCount; ++i)
    if (kInfos[i].name == name) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<uint64_t> dtype_bytes(DType dt, uint64_t n_elems) {
  const DTypeInfo& info = dtype_info(dt);
  if (n_elems % info.block_elems != 0) return std::nullopt;
  const uint64_t blocks = n_elems / info.block_elems;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, uint64_t{info.block_bytes}, &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace bf
