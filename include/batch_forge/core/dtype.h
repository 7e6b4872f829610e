// Element types. Plain types are one element per item; block-quantized weight types pack a fixed
// number of elements (the block, along the innermost / reduction axis) into a fixed number of
// bytes. Block types are opaque here: their byte layouts are documented in docs/ and only the
// kernels that consume them look inside.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bf {

enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,  // fp8, 4 exponent bits, 3 mantissa bits, no infinities ("fn" in ml_dtypes)
  kF8E5M2,
  kI64,
  kI32,
  kI16,
  kI8,
  kU64,
  kU32,
  kU16,
  kU8,
  kBool,
  // Block-quantized weights (DESIGN.md "Model file contract").
  kQ8_0,  // 32 int8 values + one f16 scale: 34 bytes per block
  kQ4_0,  // 32 four-bit values + one f16 scale: 18 bytes per block
  kNF4,   // 64 four-bit NF4 codes + one f16 absmax: 34 bytes per block
};

inline constexpr int kDTypeCount = static_cast<int>(DType::kNF4) + 1;

struct DTypeInfo {
  std::string_view name;              // our name: "f32", "q4_0"
  std::string_view safetensors_name;  // "F32"; empty for block types (stored as U8 bytes)
  uint32_t block_elems;               // elements per item: 1 for plain types
  uint32_t block_bytes;               // bytes per item
  bool is_float;
};

const DTypeInfo& dtype_info(DType dt);
inline std::string_view dtype_name(DType dt) { return dtype_info(dt).name; }
inline bool is_block_quantized(DType dt) { return dtype_info(dt).block_elems > 1; }

// "F32" → kF32. Empty when the string is not a safetensors dtype this build knows.
std::optional<DType> dtype_from_safetensors(std::string_view name);
// "f32", "q8_0" → the type. Empty when unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes taken by `n_elems` elements, or empty when that count is not a whole number of blocks
// or the byte count overflows 64 bits.
std::optional<uint64_t> dtype_bytes(DType dt, uint64_t n_elems);

}  // namespace bf
