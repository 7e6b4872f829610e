// dequantize_row: the definition of every weight type's values (docs/quantization.md).
#include <cstring>

#include "batch_forge/core/error.h"
#include "batch_forge/ops/quant.h"
#include "ops/convert.h"
#include "ops/reference.h"

namespace bf::ops {
namespace {

template <typename Block>
const Block* row_blocks(const ConstTensorView& w, int64_t row) {
  return reinterpret_cast<const Block*>(w.data) + row * w.strides[0];
}

uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);  // weights of a file need not be 2-byte aligned
  return v;
}

}  // namespace

void dequantize_row(const ConstTensorView& w, int64_t row, std::span<float> out, const float* scale) {
  BF_CHECK(w.shape.rank() == 2 && row >= 0 && row < w.shape[0] && static_cast<int64_t>(out.size()) == w.shape[1],
           "dequantize_row of ", dtype_name(w.dtype), " ", w.shape.to_string(), " row ", row, " into ", out.size());
  const int64_t k = w.shape[1];
  switch (w.dtype) {
    case DType::kF32: {
      const std::byte* p = w.data + row * w.strides[0] * 4;
      std::memcpy(out.data(), p, k * 4);
      return;
    }
    case DType::kF16:
    case DType::kBF16: {
      const std::byte* p = w.data + row * w.strides[0] * 2;
      for (int64_t i = 0; i < k; ++i) {
        const uint16_t v = load_u16(p + 2 * i);
        out[i] = w.dtype == DType::kF16 ? f16_to_f32(v) : bf16_to_f32(v);
      }
      return;
    }
    case DType::kF8E4M3: {
      const auto* p = reinterpret_cast<const uint8_t*>(w.data + row * w.strides[0]);
      const float s = scale ? scale[row] : 1.0f;
      for (int64_t i = 0; i < k; ++i) out[i] = f8e4m3_to_f32(p[i]) * s;
      return;
    }
    case DType::kQ8_0: {
      const auto* b = row_blocks<BlockQ8_0>(w, row);
      for (int64_t j = 0; j < k / 32; ++j) {
        const float d = f16_to_f32(b[j].d);
        for (int i = 0; i < 32; ++i) out[j * 32 + i] = static_cast<float>(b[j].qs[i]) * d;
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* b = row_blocks<BlockQ4_0>(w, row);
      for (int64_t j = 0; j < k / 32; ++j) {
        const float d = f16_to_f32(b[j].d);
        for (int i = 0; i < 16; ++i) {
          out[j * 32 + i] = static_cast<float>((b[j].qs[i] & 0xF) - 8) * d;
          out[j * 32 + i + 16] = static_cast<float>((b[j].qs[i] >> 4) - 8) * d;
        }
      }
      return;
    }
    case DType::kNF4: {
      const auto* b = row_blocks<BlockNF4>(w, row);
      for (int64_t j = 0; j < k / 64; ++j) {
        const float absmax = f16_to_f32(b[j].absmax);
        for (int i = 0; i < 32; ++i) {
          out[j * 64 + i] = kNf4Values[b[j].qs[i] & 0xF] * absmax;
          out[j * 64 + i + 32] = kNf4Values[b[j].qs[i] >> 4] * absmax;
        }
      }
      return;
    }
    default:
      throw Error(ErrorCode::kUnsupported, "dequantize", cat("weights of type ", dtype_name(w.dtype), " are not supported"));
  }
}

}  // namespace bf::ops
