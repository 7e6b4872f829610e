// Weight quantizers: f32 rows → the block formats of batch_forge/ops/quant.h, and f32 → fp8 e4m3fn.
// The algorithms and byte layouts are specified in docs/quantization.md; python/batch_forge/quant.py
// implements the same arithmetic in numpy, and the two must produce the same bytes (tested by
// tests/e2e/test_quant_identical.py). All arithmetic is f32, rounding is round-half-to-even
// (std::nearbyint under the default rounding mode), and f16 scales go through bf::f32_to_f16.
// Dequantization (the inverse) is ops::dequantize_row in reference.h.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "batch_forge/core/dtype.h"

namespace bf::ops {

enum class QuantScheme : uint8_t { kQ8_0, kQ4_0, kNF4, kFp8E4M3 };

struct QuantSchemeInfo {
  std::string_view name;  // as on the command line and in the batch_forge.quant metadata
  DType dtype;            // the logical dtype of a weight stored in this scheme
  int64_t block;          // elements per block along a row (1 for fp8_e4m3: no blocks)
  int64_t block_bytes;    // bytes per block
};

const QuantSchemeInfo& quant_scheme_info(QuantScheme scheme);
// "q8_0" → kQ8_0; empty for an unknown name.
std::optional<QuantScheme> quant_scheme_from_name(std::string_view name);

// Bytes of one quantized row of k values. Throws Error(kInvalidArgument, "quantize") when k is not
// a multiple of the scheme's block.
int64_t quantized_row_bytes(QuantScheme scheme, int64_t k);

// f32 → fp8 e4m3fn, round to nearest even, with ml_dtypes.float8_e4m3fn semantics: no infinities,
// so |x| above the midpoint of 448 and the NaN encoding (≥ 464 after rounding) becomes NaN, as do
// ±inf and NaN (sign kept: 0x7F / 0xFF); tiny values flush to a signed zero.
uint8_t f32_to_f8e4m3(float x);

// Quantizes one row x: [k] into out: [quantized_row_bytes(scheme, k)] bytes (k / block blocks back
// to back; for fp8_e4m3, k codes). Returns the row's scale for fp8_e4m3 (the value dequantization
// multiplies by; 0 for an all-zero row) and 1 for the block schemes, whose scales live in the blocks.
// Throws Error(kInvalidArgument, "quantize") for a k that is not a multiple of the block, an `out`
// of the wrong size, a NaN or infinite value (naming its column), or a block whose f16 scale would
// overflow (|x| too large for the scheme: see docs/quantization.md).
float quantize_row(QuantScheme scheme, std::span<const float> x, std::span<std::byte> out);

}  // namespace bf::ops
