// supports_op for the row-wise and element-wise ops: which kernel runs each, by ISA level. There
// is no vendor side for these (OpenBLAS has none), so every preference gets our kernels.
#include <string>

#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"

namespace bf::cpu {

std::optional<KernelInfo> elementwise_kernel(const CpuContext& ctx, const OpDesc& desc) {
  const std::string isa(isa_name(ctx.isa));
  auto ours = [&](std::string_view what) { return KernelInfo{std::string(what) + " " + isa, false}; };
  switch (desc.kind) {
    case OpKind::kRmsNorm:
    case OpKind::kLayerNorm:
    case OpKind::kRope:
    case OpKind::kUnary:
    case OpKind::kSiluMul:
    case OpKind::kSoftmax:
    case OpKind::kAdd:
      if (desc.dtype != DType::kF32) return std::nullopt;  // activations are f32
      return ours(op_kind_name(desc.kind));
    case OpKind::kKvWrite:
      if (desc.dtype != DType::kF32) return std::nullopt;  // the cache is f32
      return KernelInfo{"kv_write copy", false};
    case OpKind::kEmbedding:
      switch (desc.dtype) {
        case DType::kF32: return KernelInfo{"embedding f32 copy", false};
        case DType::kF16:
        case DType::kBF16: return ours(cat("embedding ", dtype_name(desc.dtype)));
        // Gathering a few rows is bandwidth-trivial: quantized tables go through the reference
        // dequantize_row (the definition of their values) instead of a kernel of their own.
        case DType::kQ8_0:
        case DType::kQ4_0:
        case DType::kNF4: return KernelInfo{cat("embedding ", dtype_name(desc.dtype), " dequantize_row"), false};
        default: return std::nullopt;
      }
    default: return std::nullopt;
  }
}

}  // namespace bf::cpu
