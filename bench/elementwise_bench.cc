// Benchmark group "elementwise": rms_norm, rope, silu_mul, softmax and kv_write at the sizes of a 7B-class
// transformer — one token (decode) and 128 tokens (prefill) of dim 4096, 32 heads × 128 for RoPE,
// the MLP width 11008 for the SwiGLU gate. Every operand is rotated over copies_for_dram()
// copies so that each call streams from DRAM, as between the layers of a model whose activations
// outgrow the cache; records say bytes = input + output (what must move per call), flops = the
// formula's arithmetic with an exp or a sincos counted as one. There is no vendor side: OpenBLAS
// has no such ops. Quick mode: rms_norm and softmax only.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "batch_forge/core/error.h"
#include "bench/bench.h"

namespace bf::bench {
namespace {

// `count` copies of `bytes` each, filled with random floats (the first copy, then copied).
struct Operand {
  size_t bytes = 0;
  std::vector<std::unique_ptr<Buffer>> copies;

  std::byte* at(size_t i) const { return copies[i % copies.size()]->data(); }
};

Operand make_operand(Backend& backend, size_t bytes, int count, uint64_t seed) {
  Operand op{bytes, {}};
  for (int c = 0; c < count; ++c) {
    op.copies.push_back(backend.allocate(bytes));
    fill_random(reinterpret_cast<float*>(op.copies.back()->data()), bytes / 4, seed + static_cast<uint64_t>(c));
  }
  return op;
}

ConstTensorView const_f32(std::byte* p, size_t bytes, const Shape& shape) {
  return ConstTensorView::contiguous({p, bytes}, DType::kF32, shape);
}
TensorView f32(std::byte* p, size_t bytes, const Shape& shape) {
  return TensorView::contiguous({p, bytes}, DType::kF32, shape);
}

// Times `call(i)` (the i-th call: operands at copy i of `copies`) and appends a record.
void measure(Context& ctx, std::vector<Record>& out, OpKind kind, const std::string& shape, double flops, double bytes,
             int copies, const std::function<void(size_t)>& call) {
  const auto info = ctx.backend.supports_op({kind, DType::kF32});
  if (!info) return;
  size_t i = 0;
  Record r;
  r.op = std::string(op_kind_name(kind));
  r.shape = shape;
  r.dtype = "f32";
  r.kernel = info->name;
  r.vendor = info->vendor;
  r.seconds = time_per_call(
      [&] {
        call(i++);
        ctx.backend.synchronize();
      },
      ctx.quick ? 0.05 : 0.2, copies);
  r.flops = flops;
  r.bytes = bytes;
  out.push_back(std::move(r));
}

void bench_rms_norm(Context& ctx, std::vector<Record>& out, int64_t rows, int64_t dim) {
  const size_t bytes = static_cast<size_t>(rows * dim) * 4;
  const int copies = copies_for_dram(2 * bytes);
  const Operand x = make_operand(ctx.backend, bytes, copies, 1), y = make_operand(ctx.backend, bytes, copies, 2);
  const Operand w = make_operand(ctx.backend, static_cast<size_t>(dim) * 4, 1, 3);  // [dim]: one copy, it stays cached
  RmsNormArgs a;
  a.weight = const_f32(w.at(0), w.bytes, Shape{dim});
  measure(ctx, out, OpKind::kRmsNorm, cat("rows=", rows, " dim=", dim), 4.0 * rows * dim, 2.0 * bytes, copies,
          [&](size_t i) {
            a.x = const_f32(x.at(i), bytes, Shape{rows, dim});
            a.y = f32(y.at(i), bytes, Shape{rows, dim});
            ctx.backend.rms_norm(a);
          });
}

void bench_softmax(Context& ctx, std::vector<Record>& out, int64_t rows, int64_t dim) {
  const size_t bytes = static_cast<size_t>(rows * dim) * 4;
  const int copies = copies_for_dram(2 * bytes);
  const Operand x = make_operand(ctx.backend, bytes, copies, 4), y = make_operand(ctx.backend, bytes, copies, 5);
  SoftmaxArgs a;
  measure(ctx, out, OpKind::kSoftmax, cat("rows=", rows, " dim=", dim), 5.0 * rows * dim, 2.0 * bytes, copies,
          [&](size_t i) {
            a.x = const_f32(x.at(i), bytes, Shape{rows, dim});
            a.y = f32(y.at(i), bytes, Shape{rows, dim});
            ctx.backend.softmax(a);
          });
}

void bench_rope(Context& ctx, std::vector<Record>& out, int64_t rows, int64_t heads, int64_t head_dim) {
  const size_t bytes = static_cast<size_t>(rows * heads * head_dim) * 4;
  const int copies = copies_for_dram(bytes);
  const Operand x = make_operand(ctx.backend, bytes, copies, 6);  // rotated in place: one operand
  std::vector<int32_t> positions(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) positions[static_cast<size_t>(r)] = static_cast<int32_t>(1000 + r);
  RopeArgs a;
  a.positions = positions.data();
  // Per pair of elements 4 multiplies and 2 adds; per row and frequency a multiply and a sincos.
  const double flops = 3.0 * rows * heads * head_dim + 2.0 * rows * head_dim / 2;
  measure(ctx, out, OpKind::kRope, cat("rows=", rows, " heads=", heads, " hd=", head_dim), flops, 2.0 * bytes, copies,
          [&](size_t i) {
            a.x = f32(x.at(i), bytes, Shape{rows, heads, head_dim});
            ctx.backend.rope(a);
          });
}

void bench_silu_mul(Context& ctx, std::vector<Record>& out, int64_t rows, int64_t dim) {
  const size_t bytes = static_cast<size_t>(rows * dim) * 4;
  const int copies = copies_for_dram(3 * bytes);
  const Operand gate = make_operand(ctx.backend, bytes, copies, 7), up = make_operand(ctx.backend, bytes, copies, 8),
                y = make_operand(ctx.backend, bytes, copies, 9);
  SiluMulArgs a;
  // Per element: |x|, exp, 1 + e, select, divide, two multiplies.
  measure(ctx, out, OpKind::kSiluMul, cat("rows=", rows, " dim=", dim), 7.0 * rows * dim, 3.0 * bytes, copies,
          [&](size_t i) {
            a.gate = const_f32(gate.at(i), bytes, Shape{rows, dim});
            a.up = const_f32(up.at(i), bytes, Shape{rows, dim});
            a.y = f32(y.at(i), bytes, Shape{rows, dim});
            ctx.backend.silu_mul(a);
          });
}

// K and V rows of `rows` new tokens (8 KV heads × 128, a 7B-class GQA layer) into scattered slots
// of a 4096-slot paged cache; bytes = the rows read and written.
void bench_kv_write(Context& ctx, std::vector<Record>& out, int64_t rows) {
  constexpr int64_t kHeads = 8, kHeadDim = 128, kPages = 256, kPageSize = 16;
  const size_t row_bytes = static_cast<size_t>(rows * kHeads * kHeadDim) * 4;
  const size_t cache_bytes = static_cast<size_t>(kPages * kPageSize * kHeads * kHeadDim) * 4;
  const int copies = copies_for_dram(2 * row_bytes);
  const Operand k = make_operand(ctx.backend, row_bytes, copies, 10),
                v = make_operand(ctx.backend, row_bytes, copies, 11);
  const Operand k_cache = make_operand(ctx.backend, cache_bytes, 1, 12),
                v_cache = make_operand(ctx.backend, cache_bytes, 1, 13);
  std::vector<int64_t> slots(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) slots[static_cast<size_t>(r)] = (r * 17) % (kPages * kPageSize);  // 17 ⊥ 4096
  KvWriteArgs a;
  a.slots = slots;
  a.k_cache = f32(k_cache.at(0), cache_bytes, Shape{kPages, kPageSize, kHeads, kHeadDim});
  a.v_cache = f32(v_cache.at(0), cache_bytes, Shape{kPages, kPageSize, kHeads, kHeadDim});
  measure(ctx, out, OpKind::kKvWrite, cat("rows=", rows, " kv_heads=", kHeads, " hd=", kHeadDim), 0, 4.0 * row_bytes,
          copies, [&](size_t i) {
            a.k = const_f32(k.at(i), row_bytes, Shape{rows, kHeads, kHeadDim});
            a.v = const_f32(v.at(i), row_bytes, Shape{rows, kHeads, kHeadDim});
            ctx.backend.kv_write(a);
          });
}

void run_group(Context& ctx, std::vector<Record>& out) {
  for (const int64_t rows : {int64_t{1}, int64_t{128}}) {
    bench_rms_norm(ctx, out, rows, 4096);
    bench_softmax(ctx, out, rows, 4096);
  }
  if (ctx.quick) return;
  for (const int64_t rows : {int64_t{1}, int64_t{128}}) bench_rope(ctx, out, rows, 32, 128);
  for (const int64_t rows : {int64_t{1}, int64_t{128}}) bench_silu_mul(ctx, out, rows, 11008);
  for (const int64_t rows : {int64_t{1}, int64_t{512}}) bench_kv_write(ctx, out, rows);
}

const bool kRegistered = register_group("elementwise", run_group);

}  // namespace
}  // namespace bf::bench
