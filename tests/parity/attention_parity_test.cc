// Fused paged attention against JAX (python/batch_forge/fixture_ops/attention.py): the scalar
// reference and the CPU backend (both kernel sides, every ISA level) on the fixture's q, paged
// K/V pools and page tables, causal and full, at the fixture's tolerance.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/isa.h"
#include "batch_forge/backends/backend.h"
#include "batch_forge/core/error.h"
#include "ops/reference.h"
#include "parity.h"
#include "support/paths.h"

namespace bf::parity {
namespace {

// int32 tensors of a fixture (Fixture::input reads f32 only).
std::vector<int32_t> read_i32(const std::string& tensor, std::vector<int64_t>* dims) {
  const SafetensorsFile file = SafetensorsFile::open(testing::binary_dir() + "/fixtures/attention.safetensors");
  const TensorInfo* t = file.find(tensor);
  if (!t) throw Error(ErrorCode::kNotFound, "parity", cat(file.path(), ": no tensor '", tensor, "'"));
  if (t->dtype != DType::kI32)
    throw Error(ErrorCode::kUnsupported, "parity", cat(file.path(), ": tensor '", tensor, "' is not i32"));
  const auto bytes = file.data(*t);
  std::vector<int32_t> out(bytes.size() / sizeof(int32_t));
  std::memcpy(out.data(), bytes.data(), bytes.size());  // copy: fixture data need not be aligned
  *dims = t->dims;
  return out;
}

// The fixture's inputs, as AttentionArgs.
struct AttentionFixture {
  explicit AttentionFixture(const Fixture& f) {
    q = f.input("q", &q_dims);
    k = f.input("k_pages", &kv_dims);
    v = f.input("v_pages");
    std::vector<int64_t> seq_dims, table_dims;
    table = read_i32("input.page_table", &table_dims);
    const std::vector<int32_t> rows = read_i32("input.seqs", &seq_dims);
    if (q_dims.size() != 3 || kv_dims.size() != 4 || seq_dims.size() != 2 || seq_dims[1] != 4)
      throw Error(ErrorCode::kInvalidFile, "parity", "attention fixture: unexpected tensor ranks");
    for (int64_t s = 0; s < seq_dims[0]; ++s) {
      const int32_t* r = rows.data() + 4 * s;  // q_begin, q_len, kv_len, first page-table entry
      const int64_t n_pages = (r[2] + kv_dims[1] - 1) / kv_dims[1];
      seqs.push_back({r[0], r[1], r[2], std::span<const int32_t>(table).subspan(r[3], n_pages)});
    }
    scale = f.params().at("scale").get<float>();
  }

  AttentionArgs args(std::vector<float>& out, bool causal) const {
    const Shape q_shape(q_dims), kv_shape(kv_dims);
    AttentionArgs a;
    a.q = ConstTensorView::contiguous(std::as_bytes(std::span(q)), DType::kF32, q_shape);
    a.kv.k = ConstTensorView::contiguous(std::as_bytes(std::span(k)), DType::kF32, kv_shape);
    a.kv.v = ConstTensorView::contiguous(std::as_bytes(std::span(v)), DType::kF32, kv_shape);
    a.seqs = seqs;
    a.causal = causal;
    a.scale = scale;
    out.assign(q.size(), 0.0f);
    a.out = TensorView::contiguous(std::as_writable_bytes(std::span(out)), DType::kF32, q_shape);
    return a;
  }

  std::vector<int64_t> q_dims, kv_dims;
  std::vector<float> q, k, v;
  std::vector<int32_t> table;
  std::vector<AttentionSeq> seqs;
  float scale = 0;
};

struct Mode {
  bool causal;
  const char* output;
};
constexpr Mode kModes[] = {{true, "out_causal"}, {false, "out_full"}};

TEST(AttentionParity, ReferenceMatchesJax) {
  const Fixture f = Fixture::load("attention");
  const AttentionFixture fx(f);
  for (const Mode& mode : kModes) {
    SCOPED_TRACE(mode.output);
    std::vector<float> out;
    ops::ref::attention(fx.args(out, mode.causal));
    EXPECT_TRUE(all_close(out, f.output(mode.output), f.tolerance()));
  }
}

TEST(AttentionParity, CpuBackendMatchesJax) {
  const Fixture f = Fixture::load("attention");
  const AttentionFixture fx(f);
  for (cpu::Isa isa : {cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar}) {
    if (!cpu::isa_supported(isa)) continue;
    BackendOptions options;
    options.isa = std::string(cpu::isa_name(isa));
    auto backend = create_backend("cpu", options);
    for (KernelPreference side : {KernelPreference::kAuto, KernelPreference::kVendor}) {
      backend->set_kernel_preference(side);
      for (const Mode& mode : kModes) {
        SCOPED_TRACE(cat(cpu::isa_name(isa), ", kernels ", kernel_preference_name(side), ", ", mode.output));
        std::vector<float> out;
        backend->attention(fx.args(out, mode.causal));
        backend->synchronize();
        EXPECT_TRUE(all_close(out, f.output(mode.output), f.tolerance()));
      }
    }
  }
}

}  // namespace
}  // namespace bf::parity
