// The backend interface (DESIGN.md "Backends"): a device that owns buffers, runs ops on its
// stream, and says which ops it supports and with which kernel. Model code is written against
// this interface only; it never names a backend.
//
// Ops take tensor views into memory the backend can address (for the CPU backend: host memory,
// including a mapped model file). They are enqueued on the backend's stream and may run
// asynchronously; synchronize() waits for all of them. The CPU backend runs them synchronously.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "batch_forge/ops/attention.h"
#include "batch_forge/ops/elementwise.h"
#include "batch_forge/ops/linear.h"
#include "batch_forge/ops/op.h"

namespace bf {

class Backend;

// A weight rearranged by one backend for its own kernels (Backend::pack_linear_weight), owned
// through shared_ptr by whoever keeps the weight (a model) and passed to ops as LinearArgs::packed.
// Opaque outside the backend that made it.
class PackedWeight {
 public:
  virtual ~PackedWeight() = default;
  virtual size_t bytes() const = 0;  // memory it holds
};

// Memory owned by one backend. Move-only through unique_ptr; freed on destruction.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual std::byte* data() = 0;  // an address the owning backend's ops accept
  virtual size_t size() const = 0;
};

struct BackendOptions {
  int threads = 0;  // CPU threads; 0: ThreadPool::default_thread_count()
  KernelPreference kernels = KernelPreference::kAuto;
  // CPU only: "" (best available), "amx" (avx512 plus AMX-INT8 tiles), "avx512", "avx2" or "scalar"
  std::string isa;
  // Row-invariant kernels: each output row of a matmul is bit-identical whatever the other rows of
  // the call and their number (the continuous-batching scheduler needs a request's tokens not to
  // depend on its batch). Overrides `kernels` where the preferred kernel's sums depend on m.
  bool batch_invariant = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;  // "cpu", "cuda"
  virtual std::string description() const = 0;  // "cpu: avx512-vnni, 2 threads, OpenBLAS 0.3.21"

  virtual std::unique_ptr<Buffer> allocate(size_t bytes) = 0;  // 64-byte aligned
  virtual void synchronize() = 0;

  KernelPreference kernel_preference() const { return kernels_; }
  void set_kernel_preference(KernelPreference p) { kernels_ = p; }

  // The kernel this backend would run for `desc` under the current preference; empty when the op
  // (or its dtype) is not supported. Calling an unsupported op throws Error(kUnsupported).
  virtual std::optional<KernelInfo> supports_op(const OpDesc& desc) const = 0;

  // The backend's prepared form of a linear weight [n, k] (a view as LinearArgs::weight takes it),
  // made once at load time and passed with every call as LinearArgs::packed; null where the
  // backend has no such form for this weight (its type, or the backend). Throws
  // Error(kInvalidArgument, "linear") for a weight that linear would reject.
  virtual std::shared_ptr<const PackedWeight> pack_linear_weight(const ConstTensorView& weight) {
    (void)weight;
    return nullptr;
  }

  virtual void linear(const LinearArgs& args) = 0;
  virtual void attention(const AttentionArgs& args) = 0;
  virtual void kv_write(const KvWriteArgs& args) = 0;
  virtual void rms_norm(const RmsNormArgs& args) = 0;
  virtual void layer_norm(const LayerNormArgs& args) = 0;
  virtual void rope(const RopeArgs& args) = 0;
  virtual void unary(const UnaryArgs& args) = 0;
  virtual void silu_mul(const SiluMulArgs& args) = 0;
  virtual void softmax(const SoftmaxArgs& args) = 0;
  virtual void embedding(const EmbeddingArgs& args) = 0;
  virtual void add(const AddArgs& args) = 0;

 protected:
  KernelPreference kernels_ = KernelPreference::kAuto;
};

// Registry. Every backend name is known to every build; those not compiled in are stubs whose
// creation throws Error(kUnsupported, "<name>: not compiled in ...").
struct BackendEntry {
  std::string_view name;
  bool compiled_in;
  std::string_view note;  // why not, or what it needs at run time
};
std::vector<BackendEntry> backend_entries();
// Compiled in and usable on this machine (a CUDA build without a GPU lists no "cuda").
std::vector<std::string> available_backends();
std::unique_ptr<Backend> create_backend(std::string_view name, const BackendOptions& options = {});

}  // namespace bf
