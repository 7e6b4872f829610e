#include "backends/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstdlib>
#include <new>

#include "backends/cpu/host_memory.h"
#include "batch_forge/core/error.h"
#include "batch_forge/core/log.h"
#include "ops/reference.h"

extern "C" {
// OpenBLAS extensions (declared in its cblas.h as well; repeated for clarity of what we use).
int openblas_get_parallel(void);
char* openblas_get_config(void);
void openblas_set_num_threads(int num_threads);
}

namespace bf::cpu {
namespace {

constexpr size_t kBufferAlignment = 64;

// Buffers of at least a huge page live in huge-page mappings (host_memory.h): weights copied at
// load, the KV pool, a prefill's activations. Smaller ones come from the heap.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes) : size_(bytes) {
    if (bytes >= kHugePageBytes) {
      mapped_ = HostMemory(bytes);
      data_ = mapped_.data();
      return;
    }
    if (bytes == 0) return;
    data_ = static_cast<std::byte*>(::operator new(bytes, std::align_val_t{kBufferAlignment}, std::nothrow));
    if (!data_) throw Error(ErrorCode::kIo, "cpu", cat("cannot allocate ", bytes, " bytes of host memory"));
  }
  ~HostBuffer() override {
    if (data_ && !mapped_.data()) ::operator delete(data_, std::align_val_t{kBufferAlignment});
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  std::byte* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  HostMemory mapped_;
  std::byte* data_ = nullptr;
  size_t size_;
};

// Our thread pool is the only one: OpenBLAS runs single-threaded inside each of our chunks. The
// build links the pthread OpenBLAS (safe to call from several threads at once) and pins it here.
void pin_vendor_blas_to_one_thread() {
  static const bool once = [] {
    if (openblas_get_parallel() != 0) openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace

std::string vendor_blas_name() {
  const char* config = openblas_get_config();
  return cat("OpenBLAS (", config ? config : "?", openblas_get_parallel() == 0 ? ", serial" : ", pinned to 1 thread",
             ")");
}

CpuBackend::CpuBackend(const BackendOptions& options) {
  const CpuLevel level = parse_cpu_level(options.isa);
  isa_ = level.isa;
  amx_ = level.amx;
  if (!isa_supported(isa_) || (amx_ && !amx_supported()))
    throw Error(ErrorCode::kUnsupported, "cpu", cat("this CPU does not support the ", level_name(level), " kernels"));
  kernels_ = options.kernels;
  batch_invariant_ = options.batch_invariant;
  const int threads = options.threads > 0 ? options.threads : ThreadPool::default_thread_count();
  if (threads == ThreadPool::global().size()) {
    pool_ = &ThreadPool::global();
  } else {
    own_pool_ = std::make_unique<ThreadPool>(threads);
    pool_ = own_pool_.get();
  }
  pin_vendor_blas_to_one_thread();
  BF_LOG(kDebug, "cpu backend: ", description());
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::description() const {
  return cat("cpu: ", level_name({isa_, amx_}), ", ", pool_->size(), " thread", pool_->size() == 1 ? "" : "s", ", kernels ",
             kernel_preference_name(kernels_), batch_invariant_ ? " (batch-invariant)" : "", ", ", vendor_blas_name());
}

std::unique_ptr<Buffer> CpuBackend::allocate(size_t bytes) { return std::make_unique<HostBuffer>(bytes); }

std::optional<KernelInfo> CpuBackend::supports_op(const OpDesc& desc) const {
  switch (desc.kind) {
    case OpKind::kLinear: return linear_kernel(ctx(), desc);
    case OpKind::kAttention: return attention_kernel(ctx(), desc);
    default: return elementwise_kernel(ctx(), desc);
  }
}

std::shared_ptr<const PackedWeight> CpuBackend::pack_linear_weight(const ConstTensorView& weight) {
  return cpu::pack_linear_weight(ctx(), weight);
}

// Each op: validate the arguments (a clear error naming the op and the argument), then run.
#define BF_CPU_OP(op, Args)                   \
  void CpuBackend::op(const Args& args) {     \
    ops::validate(args);                      \
    cpu::op(ctx(), args);                     \
  }
BF_CPU_OP(linear, LinearArgs)
BF_CPU_OP(attention, AttentionArgs)
BF_CPU_OP(rms_norm, RmsNormArgs)
BF_CPU_OP(layer_norm, LayerNormArgs)
BF_CPU_OP(rope, RopeArgs)
BF_CPU_OP(unary, UnaryArgs)
BF_CPU_OP(silu_mul, SiluMulArgs)
BF_CPU_OP(softmax, SoftmaxArgs)
BF_CPU_OP(embedding, EmbeddingArgs)
BF_CPU_OP(add, AddArgs)
BF_CPU_OP(kv_write, KvWriteArgs)
#undef BF_CPU_OP

}  // namespace bf::cpu
