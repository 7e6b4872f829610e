// Entry points of the CPU kernels, one group per file (linear.cc, attention.cc, norm.cc,
// activation.cc, …). The CpuBackend validates arguments, then calls these; each dispatches once
// on ctx.isa and spreads work over ctx.pool. Results must not depend on the thread count.
#pragma once

#include <memory>
#include <optional>

#include "backends/cpu/isa.h"
#include "batch_forge/backends/backend.h"
#include "batch_forge/core/thread_pool.h"
#include "batch_forge/ops/attention.h"
#include "batch_forge/ops/elementwise.h"
#include "batch_forge/ops/linear.h"
#include "batch_forge/ops/op.h"

namespace bf::cpu {

struct CpuContext {
  ThreadPool* pool;
  Isa isa;
  KernelPreference kernels;
  bool batch_invariant = false;  // BackendOptions::batch_invariant
  bool amx = false;              // isa is kAvx512 and the AMX-INT8 tiles may be used
};

// linear.cc (and its per-dtype files): vendor OpenBLAS for f32 when preferred, own kernels for
// every weight type (GEMV for m small, blocked GEMM otherwise).
std::optional<KernelInfo> linear_kernel(const CpuContext& ctx, const OpDesc& desc);
void linear(const CpuContext& ctx, const LinearArgs& args);
// q8_0 / q4_0 weights in the layout of the packed kernels (linear_packed.cc); null for others.
std::shared_ptr<const PackedWeight> pack_linear_weight(const CpuContext& ctx, const ConstTensorView& weight);

// attention.cc: flash-style fused attention over paged KV.
std::optional<KernelInfo> attention_kernel(const CpuContext& ctx, const OpDesc& desc);
void attention(const CpuContext& ctx, const AttentionArgs& args);

// Row-wise and element-wise ops.
std::optional<KernelInfo> elementwise_kernel(const CpuContext& ctx, const OpDesc& desc);
void rms_norm(const CpuContext& ctx, const RmsNormArgs& args);
void layer_norm(const CpuContext& ctx, const LayerNormArgs& args);
void rope(const CpuContext& ctx, const RopeArgs& args);
void unary(const CpuContext& ctx, const UnaryArgs& args);
void silu_mul(const CpuContext& ctx, const SiluMulArgs& args);
void softmax(const CpuContext& ctx, const SoftmaxArgs& args);
void embedding(const CpuContext& ctx, const EmbeddingArgs& args);
void add(const CpuContext& ctx, const AddArgs& args);
void kv_write(const CpuContext& ctx, const KvWriteArgs& args);

}  // namespace bf::cpu
