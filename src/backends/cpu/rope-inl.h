// Per ISA level (expanded by foreach_isa.h): rotate-half RoPE over a range of rows, in place.
namespace {

// cos and sin of the angles f32(pos) · f_i, i < half (ops/rope_freqs.h), into cos_out / sin_out.
BF_SIMD_FN BF_INLINE void rope_table(int32_t position, const float* inv_freq, int64_t half, float* cos_out,
                                     float* sin_out) {
  const float pos = static_cast<float>(position);
  if (std::abs(pos) > kSinCosMaxArg) {  // past ~4M tokens: beyond sincos's range reduction
    for (int64_t i = 0; i < half; ++i) {
      const double angle = ops::rope_angle(position, inv_freq[i]);
      cos_out[i] = static_cast<float>(std::cos(angle));
      sin_out[i] = static_cast<float>(std::sin(angle));
    }
    return;
  }
  const Vec p = set1(pos);
  for (int64_t i = 0; i < half; i += kLanes) {
    const int64_t m = half - i;
    Vec s, c;
    sincos(p * load_n(inv_freq + i, m), &s, &c);  // the f32 product is the model's angle
    store_n(cos_out + i, c, m);
    store_n(sin_out + i, s, m);
  }
}

// Prefetches past the end of the buffer are harmless: a prefetch never faults (the address is
// formed as an integer, so no out-of-bounds pointer is either).
inline constexpr int64_t kPrefetchHeads = 4;

// table: scratch of 2 · rope_table_stride(head_dim) floats, 64-byte aligned.
BF_SIMD_FN void rope_rows(const RopeRows& p, int64_t begin, int64_t end, float* table) {
  const int64_t half = p.head_dim / 2;
  float* cos_t = table;                                  // [half]
  float* sin_t = table + rope_table_stride(p.head_dim);  // [half], also 64-byte aligned
  for (int64_t r = begin; r < end; ++r) {
    rope_table(p.positions[r], p.inv_freq, half, cos_t, sin_t);
    for (int64_t h = 0; h < p.n_heads; ++h) {
      float* x1 = p.x + r * p.row_stride + h * p.head_stride;  // [half]: first halves
      float* x2 = x1 + half;                                   // [half]: second halves
      // The head kPrefetchHeads ahead, line by line: the L1 prefetcher does not follow this
      // pattern at 64-byte vectors (+64, +64, +64, +320 bytes per load), and AVX-512 ran at half
      // the speed of AVX2 from DRAM without it (measured, 128 rows × 32 heads × 128).
      const uintptr_t ahead = reinterpret_cast<uintptr_t>(x1) + kPrefetchHeads * p.head_stride * 4;
      for (int64_t b = 0; b < p.head_dim * 4; b += 64) {
        __builtin_prefetch(reinterpret_cast<const void*>(ahead + b), 1);
      }
      for (int64_t i = 0; i < half; i += kLanes) {
        const int64_t m = half - i;
        const Vec c = load_n(cos_t + i, m), s = load_n(sin_t + i, m);
        const Vec a = load_n(x1 + i, m), b = load_n(x2 + i, m);
        store_n(x1 + i, a * c - b * s, m);  // the model's x·cos + rotate_half(x)·sin, same roundings
        store_n(x2 + i, b * c + a * s, m);
      }
    }
  }
}

}  // namespace
