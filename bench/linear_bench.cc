// Benchmark group "linear": y = x · Wᵀ for every weight type, decode (m = 1) and prefill / batch
// (m = 8, 32, 128) rows, at the projection shapes of a small (576 / 1536) and a 7B-class (4096 /
// 11008) transformer. The weight is rotated over copies_for_dram() copies so that every call
// streams it from DRAM, as a model's layers do (a 4096² q4_0 weight, 9.4 MB, would otherwise sit
// in the 32 MB L3 and report cache speed). Records: bytes = weight bytes + x (f32), the
// traffic that must come from DRAM; flops = 2·m·n·k.
//
// Sides: f32 through OpenBLAS (vendor) and our kernels (custom); every other type with our
// kernels, and with the vendor path that dequantizes to f32 and calls sgemm (q4_0 and q8_0 always,
// the rest in the full run). q8_0 and q4_0 also with the weight packed at load time
// (Backend::pack_linear_weight, "(packed)" kernels), each copy packed, so the packed path streams
// as much memory as the others.
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "batch_forge/core/error.h"
#include "ops/convert.h"

namespace bf::bench {
namespace {

struct WeightSet {
  DType dtype;
  int64_t n = 0, k = 0;
  size_t bytes = 0;  // one copy
  std::vector<std::unique_ptr<Buffer>> copies;
  std::unique_ptr<Buffer> scale;  // [n] f32, f8_e4m3 only
  // packed[i]: copies[i] as Backend::pack_linear_weight prepared it; empty where it has no form.
  std::vector<std::shared_ptr<const PackedWeight>> packed;
};

void put_u16(std::byte* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Random but valid contents (a quantizer's output would be no faster or slower to multiply).
void fill_weight(std::byte* p, DType t, int64_t n, int64_t k, size_t bytes) {
  std::mt19937_64 rng(42);
  switch (t) {
    case DType::kF32: fill_random(reinterpret_cast<float*>(p), static_cast<size_t>(n * k), 7); return;
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3: {
      std::vector<float> row(static_cast<size_t>(k));
      for (int64_t j = 0; j < n; ++j) {
        fill_random(row.data(), row.size(), static_cast<uint64_t>(j) + 11);
        for (int64_t i = 0; i < k; ++i) {
          const size_t at = static_cast<size_t>(j * k + i);
          if (t == DType::kF8E4M3) {
            uint8_t v = static_cast<uint8_t>(rng());
            if ((v & 0x7F) == 0x7F) v ^= 1;  // not NaN
            p[at] = std::byte(v);
          } else {
            put_u16(p + 2 * at, t == DType::kF16 ? f32_to_f16(row[i] * 0.05f) : f32_to_bf16(row[i] * 0.05f));
          }
        }
      }
      return;
    }
    default: break;
  }
  // Block types: random codes, a small f16 scale at the start of each block.
  const size_t block = dtype_info(t).block_bytes;
  for (size_t b = 0; b < bytes / block; ++b) {
    std::byte* blk = p + b * block;
    put_u16(blk, f32_to_f16(0.001f + 0.01f * static_cast<float>(rng() % 1000) / 1000.0f));
    for (size_t i = 2; i < block; ++i) blk[i] = std::byte(static_cast<uint8_t>(rng()));
  }
}

WeightSet make_weights(Backend& backend, DType t, int64_t n, int64_t k) {
  WeightSet w{t, n, k};
  w.bytes = static_cast<size_t>(*dtype_bytes(t, static_cast<uint64_t>(n * k)));
  const int copies = copies_for_dram(w.bytes);
  for (int c = 0; c < copies; ++c) {
    w.copies.push_back(backend.allocate(w.bytes));
    if (c == 0)
      fill_weight(w.copies[0]->data(), t, n, k, w.bytes);
    else
      std::memcpy(w.copies[c]->data(), w.copies[0]->data(), w.bytes);
  }
  if (backend.pack_linear_weight(ConstTensorView::contiguous({w.copies[0]->data(), w.bytes}, t, Shape{n, k})))
    for (const auto& c : w.copies)
      w.packed.push_back(backend.pack_linear_weight(ConstTensorView::contiguous({c->data(), w.bytes}, t, Shape{n, k})));
  if (t == DType::kF8E4M3) {
    w.scale = backend.allocate(static_cast<size_t>(n) * 4);
    auto* s = reinterpret_cast<float*>(w.scale->data());
    for (int64_t j = 0; j < n; ++j) s[j] = 0.01f;
  }
  return w;
}

// Times y = x · Wᵀ under `side` (with the packed copies when `packed`) and appends one record.
void measure(Context& ctx, std::vector<Record>& out, const WeightSet& w, int64_t m, KernelPreference side,
             bool packed = false) {
  Backend& backend = ctx.backend;
  backend.set_kernel_preference(side);
  const auto info = backend.supports_op({OpKind::kLinear, w.dtype, m, w.n, w.k, packed});
  if (!info) return;
  auto x = backend.allocate(static_cast<size_t>(m * w.k) * 4);  // [m, k]
  auto y = backend.allocate(static_cast<size_t>(m * w.n) * 4);  // [m, n]
  fill_random(reinterpret_cast<float*>(x->data()), static_cast<size_t>(m * w.k), 5);
  LinearArgs args;
  args.x = ConstTensorView::contiguous({x->data(), x->size()}, DType::kF32, Shape{m, w.k});
  args.weight = ConstTensorView::contiguous({w.copies[0]->data(), w.bytes}, w.dtype, Shape{w.n, w.k});
  if (w.scale) args.scale = ConstTensorView::contiguous({w.scale->data(), w.scale->size()}, DType::kF32, Shape{w.n});
  args.y = TensorView::contiguous({y->data(), y->size()}, DType::kF32, Shape{m, w.n});
  size_t next = 0;
  Record r;
  r.op = "linear";
  r.shape = cat("m=", m, " n=", w.n, " k=", w.k);
  r.dtype = std::string(dtype_name(w.dtype));
  r.kernel = info->name;
  r.vendor = info->vendor;
  r.seconds = time_per_call(
      [&] {
        const size_t c = next++ % w.copies.size();
        args.weight.data = w.copies[c]->data();
        if (packed) args.packed = w.packed[c].get();
        backend.linear(args);
        backend.synchronize();
      },
      ctx.quick ? 0.1 : 0.2, static_cast<int>(w.copies.size()));
  r.flops = 2.0 * static_cast<double>(m) * static_cast<double>(w.n) * static_cast<double>(w.k);
  r.bytes = static_cast<double>(w.bytes) + static_cast<double>(m * w.k) * 4;
  out.push_back(std::move(r));
}

void linear_group(Context& ctx, std::vector<Record>& out) {
  struct NK {
    int64_t n, k;
  };
  const std::vector<NK> shapes = ctx.quick ? std::vector<NK>{{4096, 4096}}
                                           : std::vector<NK>{{1536, 576}, {576, 1536}, {4096, 4096}, {11008, 4096}, {4096, 11008}};
  const std::vector<int64_t> rows = ctx.quick ? std::vector<int64_t>{1, 128} : std::vector<int64_t>{1, 8, 32, 128};
  const std::vector<DType> types =
      ctx.quick ? std::vector<DType>{DType::kF32, DType::kQ8_0, DType::kQ4_0}
                : std::vector<DType>{DType::kF32, DType::kQ8_0, DType::kQ4_0, DType::kNF4, DType::kF8E4M3, DType::kBF16, DType::kF16};
  const KernelPreference restore = ctx.backend.kernel_preference();
  for (const NK& s : shapes) {
    for (DType t : types) {
      const WeightSet w = make_weights(ctx.backend, t, s.n, s.k);
      const bool vendor_here = t == DType::kF32 || t == DType::kQ8_0 || t == DType::kQ4_0 || !ctx.quick;
      for (int64_t m : rows) {
        if (ctx.run_vendor() && vendor_here) measure(ctx, out, w, m, KernelPreference::kVendor);
        if (ctx.run_custom()) measure(ctx, out, w, m, KernelPreference::kCustom);
        if (ctx.run_custom() && !w.packed.empty()) measure(ctx, out, w, m, KernelPreference::kCustom, true);
      }
    }
  }
  ctx.backend.set_kernel_preference(restore);
}

const bool registered = register_group("linear", linear_group);

}  // namespace
}  // namespace bf::bench
