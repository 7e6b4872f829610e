#include "batch_forge/ops/op.h"

namespace bf {

std::string_view op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kLinear: return "linear";
    case OpKind::kAttention: return "attention";
    case OpKind::kRmsNorm: return "rms_norm";
    case OpKind::kLayerNorm: return "layer_norm";
    case OpKind::kRope: return "rope";
    case OpKind::kUnary: return "unary";
    case OpKind::kSiluMul: return "silu_mul";
    case OpKind::kSoftmax: return "softmax";
    case OpKind::kEmbedding: return "embedding";
    case OpKind::kAdd: return "add";
    case OpKind::kKvWrite: return "kv_write";
  }
  return "?";
}

std::string_view kernel_preference_name(KernelPreference p) {
  switch (p) {
    case KernelPreference::kAuto: return "auto";
    case KernelPreference::kVendor: return "vendor";
    case KernelPreference::kCustom: return "custom";
  }
  return "?";
}

}  // namespace bf
