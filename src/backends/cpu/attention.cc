// Fused attention over the paged KV cache, CPU entry points: which side runs (flash kernel or the
// materialized OpenBLAS one) and what supports_op says about it. Arguments arrive validated
// (ops::validate in src/ops/attention_ref.cc).
//
//   kAuto, kCustom  flash attention (attention_flash.cc): online softmax over key blocks, per-ISA
//                   inner loops; extra memory O(tile rows · head_dim) per thread.
//   kVendor         materialized attention (attention_vendor.cc): gathered K/V, S = Q·Kᵀ and
//                   O = P·V through cblas_sgemm; extra memory O(q_len · kv_len) per thread.
#include <algorithm>
#include <cstring>

#include "backends/cpu/attention_internal.h"
#include "backends/cpu/kernels.h"
#include "batch_forge/core/error.h"

namespace bf::cpu {

std::optional<KernelInfo> attention_kernel(const CpuContext& ctx, const OpDesc& desc) {
  if (desc.kind != OpKind::kAttention || desc.dtype != DType::kF32) return std::nullopt;
  if (ctx.kernels == KernelPreference::kVendor) return KernelInfo{"openblas sgemm attention (materialized)", true};
  return KernelInfo{cat("flash attention ", isa_name(ctx.isa)), false};
}

// One row's K and V per slot, rows over the pool: in a prefill the rows were just produced (the
// projection's output, RoPE in place) by every thread, so one thread copying all of them waits on
// the others' caches for half the lines (SmolLM2-135M's 512-token prefill: 4 ms of 165, serial).
void kv_write(const CpuContext& ctx, const KvWriteArgs& args) {
  const int64_t rows = args.k.shape[0], width = args.k.shape[1] * args.k.shape[2];
  if (rows == 0 || width == 0) return;
  const auto* k = reinterpret_cast<const float*>(args.k.data);
  const auto* v = reinterpret_cast<const float*>(args.v.data);
  auto* kc = reinterpret_cast<float*>(args.k_cache.data);
  auto* vc = reinterpret_cast<float*>(args.v_cache.data);
  const size_t bytes = static_cast<size_t>(width) * sizeof(float);
  ctx.pool->parallel_for(
      rows, std::max<int64_t>(1, 8192 / width),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          std::memcpy(kc + args.slots[r] * width, k + r * args.k.strides[0], bytes);
          std::memcpy(vc + args.slots[r] * width, v + r * args.v.strides[0], bytes);
        }
      },
      Schedule::kStatic);
}

void attention(const CpuContext& ctx, const AttentionArgs& args) {
  if (ctx.kernels == KernelPreference::kVendor)
    attn::vendor_attention(ctx, args);
  else
    attn::flash_attention(ctx, args);
}

}  // namespace bf::cpu
