// Linear on the CPU: which kernel runs, what supports_op calls it, and the dispatch (once per call;
// the kernels pick their ISA functions once and spread rows over the pool). Arguments arrive
// validated (ops::validate in src/ops/linear_ref.cc). The kernels live in linear_*.cc
// (linear_internal.h lists them).
//
// The sides:
//   vendor   f32 weights: OpenBLAS sgemv (m = 1) / sgemm on row ranges of the weight; other
//            types: rows dequantized to f32 in a per-thread scratch, then the same calls.
//   custom   q8_0 / q4_0: activations quantized to int8 blocks once per call, integer dot
//            products: GEMV for m ≤ kGemvMaxRows (every ISA), above it the AVX-512 VNNI GEMM over
//            packed panels (AVX2 / scalar: the GEMV, 4 rows at a time). f16 / bf16 / f8_e4m3 /
//            nf4 GEMV on AVX-512: converted in registers. Everything else: our f32 tile kernels
//            (f32 weights in place, other types over dequantized panels).
// kAuto, from the bench/linear_bench.cc group "linear" (every shape × m = 1, 8, 32, 128, both
// sides) and interleaved A/B runs on the 2-core Zen 4/5 development machine, 2 threads:
//   AVX-512: custom for every type and shape; custom ÷ vendor time, min–max over the shapes:
//     f32 GEMV 1.01–1.5× (both stream the weight), GEMM 1.04–2.0× (this OpenBLAS runs its
//     Haswell kernels); q8_0 / q4_0 GEMV 1.5–5.7×, GEMM 1.4–8.3× (dequantize-and-sgemm);
//     nf4 / f8_e4m3 / bf16 / f16 GEMV 1.3–4.5×, GEMM over dequantized panels 1.1–2.2×.
//   AVX2, scalar: our int8 GEMV for q8_0 / q4_0 decode (3.6× dequantize-and-sgemv at the AVX2
//     level); the vendor side for everything else, where our AVX2 f32 tiles only match
//     OpenBLAS (−5 … +2 %) and the q-types' GEMM by GEMV rows is 7 % behind dequantize-and-sgemm.
#include "backends/cpu/kernels.h"
#include "backends/cpu/linear_internal.h"
#include "batch_forge/core/error.h"

namespace bf::cpu {
namespace {

enum class Path {
  kBlas,         // OpenBLAS on f32 weights
  kBlasDequant,  // OpenBLAS on dequantized rows
  kGemvInt8,     // q8_0 / q4_0 × int8, few rows
  kGemmInt8,     // q8_0 / q4_0 × int8, AVX-512 VNNI panels
  kFloat,        // our f32 tiles (any weight type)
};

bool is_q8_q4(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

bool is_weight_type(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF8E4M3:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kNF4: return true;
    default: return false;
  }
}

Path custom_path(Isa isa, DType t, int64_t m) {
  if (!is_q8_q4(t)) return Path::kFloat;
  return m > lin::kGemvMaxRows && isa == Isa::kAvx512 ? Path::kGemmInt8 : Path::kGemvInt8;
}

Path vendor_path(DType t) { return t == DType::kF32 ? Path::kBlas : Path::kBlasDequant; }

// kAuto (measurements in the header comment): on AVX-512 our kernels for everything; below it our
// int8 GEMV for q8_0 / q4_0 decode and the vendor side for the rest.
Path choose(const CpuContext& ctx, DType t, int64_t m) {
  switch (ctx.kernels) {
    case KernelPreference::kVendor: return vendor_path(t);
    case KernelPreference::kCustom: return custom_path(ctx.isa, t, m);
    case KernelPreference::kAuto: break;
  }
  if (ctx.isa == Isa::kAvx512) return custom_path(ctx.isa, t, m);
  if (is_q8_q4(t) && m <= lin::kGemvMaxRows) return Path::kGemvInt8;
  return vendor_path(t);
}

std::string_view isa_label(Isa isa, bool int8) {
  switch (isa) {
    case Isa::kAvx512: return int8 ? "avx512-vnni" : "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: break;
  }
  return "scalar";
}

std::string kernel_name(Path path, Isa isa, DType t, int64_t m) {
  const std::string_view type = dtype_name(t);
  const char* shape = m <= lin::kGemvMaxRows ? "gemv" : "gemm";
  switch (path) {
    case Path::kBlas: return m == 1 ? "openblas sgemv" : "openblas sgemm";
    case Path::kBlasDequant: return cat(type, " dequant + openblas ", m == 1 ? "sgemv" : "sgemm");
    case Path::kGemvInt8: return cat(type, " gemv int8 ", isa_label(isa, true));
    case Path::kGemmInt8: return cat(type, " gemm int8 ", isa_label(isa, true));
    case Path::kFloat:
      if (t == DType::kF32 || (m <= lin::kGemvMaxRows && lin::has_fused_gemv(isa, t)))
        return cat(type, " ", shape, " ", isa_label(isa, false));
      return cat(type, " ", shape, " f32 ", isa_label(isa, false), " (dequantized panels)");
  }
  return "?";
}

lin::Problem make_problem(const LinearArgs& a) {
  lin::Problem p;
  p.m = a.x.shape[0];
  p.n = a.weight.shape[0];
  p.k = a.weight.shape[1];
  p.x = reinterpret_cast<const float*>(a.x.data);
  p.ldx = a.x.strides[0];
  p.wtype = a.weight.dtype;
  p.w = a.weight.data;
  p.w_row_bytes = a.weight.strides[0] * static_cast<int64_t>(dtype_info(a.weight.dtype).block_bytes);
  p.scale = reinterpret_cast<const float*>(a.scale.data);
  p.bias = reinterpret_cast<const float*>(a.bias.data);
  p.y = reinterpret_cast<float*>(a.y.data);
  p.ldy = a.y.strides[0];
  return p;
}

}  // namespace

std::optional<KernelInfo> linear_kernel(const CpuContext& ctx, const OpDesc& desc) {
  if (desc.kind != OpKind::kLinear || !is_weight_type(desc.dtype)) return std::nullopt;
  const Path path = choose(ctx, desc.dtype, desc.m);
  return KernelInfo{kernel_name(path, ctx.isa, desc.dtype, desc.m),
                    path == Path::kBlas || path == Path::kBlasDequant};
}

void linear(const CpuContext& ctx, const LinearArgs& args) {
  const lin::Problem p = make_problem(args);
  if (p.m == 0) return;
  switch (choose(ctx, p.wtype, p.m)) {
    case Path::kBlas:
    case Path::kBlasDequant: return lin::vendor_linear(ctx, p);
    case Path::kFloat:
      if (p.m <= lin::kGemvMaxRows && lin::has_fused_gemv(ctx.isa, p.wtype)) return lin::fgemv_avx512(ctx, p);
      return lin::fgemm(ctx, p);
    case Path::kGemvInt8: {
      thread_local lin::QuantizedActs acts;  // reused between calls of this thread
      const lin::QLayoutSpec spec = lin::qgemv_layout(ctx.isa, p.wtype);
      lin::quantize_acts(ctx, p, spec.layout, spec.corr_mult, acts);
      return lin::qgemv(ctx, p, acts);
    }
    case Path::kGemmInt8: {
      if (p.w_row_bytes >= lin::kGemmMaxRowBytes) {  // rows too far apart for the packing's gathers
        thread_local lin::QuantizedActs gemv_acts;
        const lin::QLayoutSpec spec = lin::qgemv_layout(ctx.isa, p.wtype);
        lin::quantize_acts(ctx, p, spec.layout, spec.corr_mult, gemv_acts);
        return lin::qgemv(ctx, p, gemv_acts);
      }
      thread_local lin::QuantizedActs acts;
      lin::quantize_acts(ctx, p, lin::QLayout::kU8, 0, acts);
      return lin::qgemm_avx512(ctx, p, acts);
    }
  }
}

}  // namespace bf::cpu
