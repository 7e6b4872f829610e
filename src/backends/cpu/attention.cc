// Fused attention over the paged KV cache, CPU entry points: which side runs (flash kernel or the
// materialized OpenBLAS one) and what supports_op says about it. Arguments arrive validated
// (ops::validate in src/ops/attention_ref.cc).
//
//   kAuto, kCustom  flash attention (attention_flash.cc): online softmax over key blocks, per-ISA
//                   inner loops; extra memory O(tile rows · head_dim) per thread.
//   kVendor         materialized attention (attention_vendor.cc): gathered K/V, S = Q·Kᵀ and
//                   O = P·V through cblas_sgemm; extra memory O(q_len · kv_len) per thread.
#include "backends/cpu/attention_internal.h"
#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"

namespace bf::cpu {

std::optional<KernelInfo> attention_kernel(const CpuContext& ctx, const OpDesc& desc) {
  if (desc.kind != OpKind::kAttention || desc.dtype != DType::kF32) return std::nullopt;
  if (ctx.kernels == KernelPreference::kVendor) return KernelInfo{"openblas sgemm attention (materialized)", true};
  return KernelInfo{cat("flash attention ", isa_name(ctx.isa)), false};
}

void attention(const CpuContext& ctx, const AttentionArgs& args) {
  if (ctx.kernels == KernelPreference::kVendor)
    attn::vendor_attention(ctx, args);
  else
    attn::flash_attention(ctx, args);
}

}  // namespace bf::cpu
