// The CPU backend: host memory, synchronous ops, one thread pool, run-time ISA dispatch.
#pragma once

#include <memory>

#include "backends/cpu/kernels.h"
#include "batch_forge/backends/backend.h"

namespace bf::cpu {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options);
  ~CpuBackend() override;

  std::string_view name() const override { return "cpu"; }
  std::string description() const override;
  Isa isa() const { return isa_; }
  ThreadPool& pool() { return *pool_; }

  std::unique_ptr<Buffer> allocate(size_t bytes) override;
  void synchronize() override {}

  std::optional<KernelInfo> supports_op(const OpDesc& desc) const override;

  // q8_0 / q4_0: the packed layout of linear_packed.cc (the same bytes as the blocks, rearranged
  // for the int8 kernels); null for other types.
  std::shared_ptr<const PackedWeight> pack_linear_weight(const ConstTensorView& weight) override;
  void linear(const LinearArgs& args) override;
  void attention(const AttentionArgs& args) override;
  void rms_norm(const RmsNormArgs& args) override;
  void layer_norm(const LayerNormArgs& args) override;
  void rope(const RopeArgs& args) override;
  void unary(const UnaryArgs& args) override;
  void silu_mul(const SiluMulArgs& args) override;
  void softmax(const SoftmaxArgs& args) override;
  void embedding(const EmbeddingArgs& args) override;
  void add(const AddArgs& args) override;
  void kv_write(const KvWriteArgs& args) override;

 private:
  CpuContext ctx() const { return {pool_, isa_, kernels_, batch_invariant_, amx_}; }

  Isa isa_;
  bool amx_ = false;
  bool batch_invariant_ = false;
  std::unique_ptr<ThreadPool> own_pool_;  // only when options.threads differs from the global pool
  ThreadPool* pool_;
};

// The vendor BLAS this build links, for descriptions and benchmarks: "OpenBLAS 0.3.21 (serial)".
std::string vendor_blas_name();

}  // namespace bf::cpu
