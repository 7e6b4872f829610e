#include "batch_forge/runtime/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr size_t kSumBlock = 1024;       // tokens per block sum; the draw skips whole blocks
constexpr size_t kScanBlock = 64;        // tokens per block maximum in the top-k scan
constexpr size_t kHeapTopK = 1024;       // top-k up to this scans with a heap; above, nth_element
constexpr size_t kSortedDrawMax = 4096;  // kept sets up to this are drawn best first after a sort;
                                         // larger ones by one pass in id order
constexpr size_t kNucleusSortMax = 64;   // the top-p quickselect sorts ranges this short
constexpr size_t kBinnedMin = 4096;      // top-p bins more candidates than this by logit first
constexpr size_t kBins = 1024;

[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, "sampler", message); }

template <typename T>
[[noreturn]] void out_of_range(const char* field, T value, const char* allowed) {
  invalid(cat("sampling parameter ", field, " is ", value, " but must be ", allowed));
}

// The candidate order: larger logit first, then lower id. A strict total order on logits that
// are neither NaN nor -0 (sanitizing removes both), so every selection and sort has one right
// answer whatever the standard library.
struct Better {
  const float* logits;
  bool operator()(int32_t a, int32_t b) const { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); }
};
struct BetterCandidate {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

// The loops over the whole vocabulary test bit patterns where a float comparison would read more
// naturally: GCC does not if-convert a float comparison under the default -ftrapping-math, which
// keeps such a loop scalar, while the integer form vectorizes at the baseline ISA with the same
// result.

uint32_t bits_of(float x) { return std::bit_cast<uint32_t>(x); }

// A signed integer ordered like the float itself, for floats that are not NaN.
int32_t order_key(float x) {
  const int32_t b = std::bit_cast<int32_t>(x);
  return b ^ ((b >> 31) & 0x7fffffff);
}

// out = in with NaN → -inf and -0 → +0. Returns whether any logit is +inf.
bool copy_sanitized(const float* in, size_t n, float* out) {
  uint32_t pos_inf = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t b = bits_of(in[i]);
    pos_inf |= b == 0x7f800000u;
    const uint32_t nan = (b & 0x7fffffffu) > 0x7f800000u ? ~0u : 0u;
    const uint32_t neg_zero = b == 0x80000000u ? ~0u : 0u;
    out[i] = std::bit_cast<float>(((b & ~nan) | (0xff800000u & nan)) & ~neg_zero);
  }
  return pos_inf != 0;
}

float max_of(const float* x, size_t n) {
  int32_t m = order_key(-kInf);
  for (size_t i = 0; i < n; ++i) m = std::max(m, order_key(x[i]));
  return std::bit_cast<float>(m ^ ((m >> 31) & 0x7fffffff));
}

// e^x for x <= 0, -inf included, from + and × alone so that it gives the same bits everywhere
// (libm's expf differs between C libraries). x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two
// so n ln2 is exact); e^r by its Taylor series to r^7, whose remainder is below 5e-9; 2^n from
// the exponent bits. Measured relative error < 1.2e-7 wherever the result is a normal float.
// Clamping at -88 keeps n >= -127, whose 2^n encodes as 0: results below ~1e-38 flush to zero,
// which no sum here can notice.
float exp_nonpositive(float x) {
  x = std::bit_cast<float>(std::min(bits_of(x), bits_of(-88.0f)));         // for x <= 0: max(x, -88)
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

// w = exp((l - l_max) / temperature). At temperature 1 the division (exact, but a sixth of the
// loop's time) is skipped.
void exp_scaled(const float* l, size_t n, float l_max, float temperature, float* w) {
  if (temperature == 1.0f) {
    for (size_t i = 0; i < n; ++i) w[i] = exp_nonpositive(l[i] - l_max);
    return;
  }
  for (size_t i = 0; i < n; ++i) w[i] = exp_nonpositive((l[i] - l_max) / temperature);
}

// Zeroes the weights below min_p. Weights are >= 0, whose bit patterns order like their values.
void keep_min_p(float* w, size_t n, float min_p) {
  const int32_t floor = std::bit_cast<int32_t>(min_p);
  for (size_t i = 0; i < n; ++i) w[i] = std::bit_cast<int32_t>(w[i]) >= floor ? w[i] : 0.0f;
}

// Sums w in double: per block of kSumBlock tokens in 8 interleaved lanes (a fixed order, so the
// same bits on every machine), the block totals into `blocks`. Returns the total.
double sum_blocks(const float* w, size_t n, std::vector<double>& blocks) {
  blocks.resize((n + kSumBlock - 1) / kSumBlock);
  double total = 0.0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const float* x = w + b * kSumBlock;
    const size_t len = std::min(kSumBlock, n - b * kSumBlock);
    double lanes[8] = {};
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
      for (size_t j = 0; j < 8; ++j) lanes[j] += x[i + j];
    double s = 0.0;
    for (size_t j = 0; j < 8; ++j) s += lanes[j];
    for (; i < len; ++i) s += x[i];
    blocks[b] = s;
    total += s;
  }
  return total;
}

// The first token whose running weight exceeds target, skipping whole blocks by their sums.
int32_t find_cumulative(const float* w, size_t n, const std::vector<double>& blocks, double target) {
  double cum = 0.0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (cum + blocks[b] <= target) {
      cum += blocks[b];
      continue;
    }
    const size_t end = std::min(n, (b + 1) * kSumBlock);
    for (size_t i = b * kSumBlock; i < end; ++i) {
      cum += w[i];
      if (w[i] > 0.0f && cum > target) return static_cast<int32_t>(i);
    }
  }
  // Rounding left the target at or above the running total: the last token of positive weight.
  for (size_t i = n; i-- > 0;)
    if (w[i] > 0.0f) return static_cast<int32_t>(i);
  BF_CHECK(false, "no token has positive weight");
  return -1;
}

}  // namespace

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    out_of_range("temperature", temperature, "a finite number >= 0 (0 = greedy)");
  if (top_k < 0) out_of_range("top_k", top_k, ">= 0 (0 = off)");
  if (!(top_p > 0.0f && top_p <= 1.0f)) out_of_range("top_p", top_p, "in (0, 1] (1 = off)");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) out_of_range("min_p", min_p, "in [0, 1] (0 = off)");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    out_of_range("repetition_penalty", repetition_penalty, "a finite number > 0 (1 = off)");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    out_of_range("frequency_penalty", frequency_penalty, "in [-2, 2] (0 = off)");
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    out_of_range("presence_penalty", presence_penalty, "in [-2, 2] (0 = off)");
  if (top_logprobs < 0 || top_logprobs > kMaxTopLogprobs)
    out_of_range("top_logprobs", top_logprobs, "in [0, 20] (0 = none)");
}

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Xoshiro256StarStar::Xoshiro256StarStar(uint64_t seed) {
  // splitmix64 is a bijection of its counter, so four successive outputs are never all zero.
  SplitMix64 mix(seed);
  for (uint64_t& word : s_) word = mix.next();
}

Xoshiro256StarStar Xoshiro256StarStar::from_state(const std::array<uint64_t, 4>& state) {
  BF_CHECK(state[0] != 0 || state[1] != 0 || state[2] != 0 || state[3] != 0, "xoshiro256** state is all zero");
  Xoshiro256StarStar rng;
  rng.s_ = state;
  return rng;
}

uint64_t Xoshiro256StarStar::next() {
  const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

double Xoshiro256StarStar::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { params_.validate(); }

SampledToken Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                             std::span<const int32_t> generated) {
  const size_t vocab = logits.size();
  if (vocab == 0) invalid("logits are empty: expected one score per vocabulary token");
  if (vocab > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    invalid(cat("logits have ", vocab, " entries but token ids are 32-bit"));

  logits_.resize(vocab);
  weights_.resize(vocab);
  if (copy_sanitized(logits.data(), vocab, logits_.data())) {
    const size_t i = static_cast<size_t>(std::find(logits.begin(), logits.end(), kInf) - logits.begin());
    invalid(cat("logit of token ", i, " is +inf: the model's output overflowed"));
  }
  apply_penalties(prompt, generated);

  const float l_max = max_of(logits_.data(), vocab);
  if (l_max == -kInf) invalid(cat("all ", vocab, " logits are -inf or NaN (after penalties): no token can be sampled"));

  // log Z at temperature 1; the weights and block sums double as those of a temperature-1 draw.
  exp_scaled(logits_.data(), vocab, l_max, 1.0f, weights_.data());
  const double z1 = sum_blocks(weights_.data(), vocab, blocks_);
  const double log_z = static_cast<double>(l_max) + std::log(z1);

  SampledToken out;
  if (params_.top_logprobs > 0) fill_top_logprobs(log_z, out);
  if (params_.temperature == 0.0f) {
    out.id = static_cast<int32_t>(std::find(logits_.begin(), logits_.end(), l_max) - logits_.begin());
  } else {
    out.id = draw(rng_.uniform(), l_max, z1);
  }
  out.logprob = static_cast<float>(static_cast<double>(logits_[out.id]) - log_z);
  return out;
}

void Sampler::apply_penalties(std::span<const int32_t> prompt, std::span<const int32_t> generated) {
  const bool repetition = params_.repetition_penalty != 1.0f;
  const bool additive = params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  if (!repetition && !additive) return;

  // Every id is checked before any scratch is touched, so a bad id leaves counts_ and seen_ zero.
  const int64_t vocab = static_cast<int64_t>(logits_.size());
  auto check_ids = [vocab](std::span<const int32_t> ids, const char* name) {
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= vocab)
        invalid(cat(name, "[", i, "] is token id ", ids[i], " but the vocabulary is [0, ", vocab, ")"));
  };
  check_ids(generated, "generated");
  if (repetition) check_ids(prompt, "prompt");

  if (counts_.size() != logits_.size()) {
    counts_.assign(logits_.size(), 0);
    seen_.assign(logits_.size(), 0);
  }
  touched_.clear();
  auto touch = [&](int32_t id) {
    if (!seen_[id]) {
      seen_[id] = 1;
      touched_.push_back(id);
    }
  };
  for (const int32_t id : generated) {
    touch(id);
    ++counts_[id];
  }
  if (repetition)
    for (const int32_t id : prompt) touch(id);

  const float rep = params_.repetition_penalty;
  int32_t overflow_id = -1;
  for (const int32_t id : touched_) {
    float& l = logits_[id];
    if (repetition) l = l > 0.0f ? l / rep : l * rep;
    if (counts_[id] > 0) {
      l -= params_.frequency_penalty * static_cast<float>(counts_[id]);
      l -= params_.presence_penalty;
    }
    l += 0.0f;  // an underflow to -0 becomes +0, as sanitizing left every other logit
    if (l == kInf && overflow_id < 0) overflow_id = id;
    seen_[id] = 0;
    counts_[id] = 0;
  }
  if (overflow_id >= 0)
    invalid(cat("repetition_penalty ", rep, " pushes the logit of token ", overflow_id, " to +inf"));
}

void Sampler::select_top(size_t k, std::vector<int32_t>& ids) const {
  ids.clear();
  if (k == 0) return;
  // A heap of the best k so far with the worst on top. Tokens come in id order, so a token that
  // ties the worst has the larger id and loses: only a strictly larger logit gets in. Once the
  // heap is full, most 64-token blocks hold nothing above the worst and are skipped on their
  // maximum alone.
  const float* l = logits_.data();
  const Better better{l};
  const size_t vocab = logits_.size();
  for (size_t start = 0; start < vocab; start += kScanBlock) {
    const size_t end = std::min(vocab, start + kScanBlock);
    if (ids.size() == k && !(max_of(l + start, end - start) > l[ids.front()])) continue;
    for (size_t i = start; i < end; ++i) {
      if (l[i] == -kInf) continue;
      if (ids.size() < k) {
        ids.push_back(static_cast<int32_t>(i));
        std::push_heap(ids.begin(), ids.end(), better);
      } else if (l[i] > l[ids.front()]) {
        std::pop_heap(ids.begin(), ids.end(), better);
        ids.back() = static_cast<int32_t>(i);
        std::push_heap(ids.begin(), ids.end(), better);
      }
    }
  }
  std::sort(ids.begin(), ids.end(), better);
}

void Sampler::fill_top_logprobs(double log_z, SampledToken& out) {
  select_top(static_cast<size_t>(params_.top_logprobs), top_ids_);
  out.top.resize(top_ids_.size());
  for (size_t j = 0; j < top_ids_.size(); ++j) {
    const int32_t id = top_ids_[j];
    out.top[j] = {id, static_cast<float>(static_cast<double>(logits_[id]) - log_z)};
  }
}

Sampler::Nucleus Sampler::select_nucleus(double target, float top) {
  // First, for many candidates: 1024 bins of equal logit width, best first. Bins follow the
  // candidate order (a larger logit never lands in a later bin), so one pass of bin weights
  // finds the bin where the running weight reaches the target; the bins before it are all in,
  // the bins after it all out, and the search goes on inside that bin alone.
  const BetterCandidate better;
  const auto first = candidates_.begin();
  const auto last = first + static_cast<ptrdiff_t>(n_candidates_);
  size_t size = n_candidates_;
  const float bottom = candidates_bottom_;
  BF_CHECK(bottom <= top, "logit bounds ", bottom, " > ", top);
  double before = 0.0;  // weight of the candidates known to be in
  size_t n_before = 0;  // and their number
  if (size > kBinnedMin && bottom < top) {
    const double scale = static_cast<double>(kBins) / (static_cast<double>(top) - bottom);
    auto bin_of = [&](float logit) {
      return std::min(kBins - 1, static_cast<size_t>((static_cast<double>(top) - logit) * scale));
    };
    bin_mass_.assign(kBins, 0.0);
    bin_count_.assign(kBins, 0);
    for (auto c = first; c != last; ++c) {
      const size_t b = bin_of(c->logit);
      bin_mass_[b] += c->weight;
      ++bin_count_[b];
    }
    // The bin where the running weight reaches the target, or, where rounding leaves it just
    // short, the last bin that holds a candidate.
    size_t last_bin = kBins - 1;
    while (bin_count_[last_bin] == 0) --last_bin;  // there is a candidate
    size_t cut_bin = 0;
    for (; cut_bin < last_bin && before + bin_mass_[cut_bin] < target; ++cut_bin) {
      before += bin_mass_[cut_bin];
      n_before += bin_count_[cut_bin];
    }
    const auto cut_end = std::partition(first, last, [&](const Candidate& c) { return bin_of(c.logit) == cut_bin; });
    size = static_cast<size_t>(cut_end - first);
  }

  // Then quickselect on weight: halve [lo, hi) with nth_element until it is short, keeping
  // candidates_[0, lo) as the lo best of the range, whose weight added to `before` stays below
  // the target, and [0, hi) as a run whose weight reaches it. Expected O(size).
  size_t lo = 0;
  size_t hi = size;
  while (hi - lo > kNucleusSortMax) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(first + static_cast<ptrdiff_t>(lo), first + static_cast<ptrdiff_t>(mid),
                     first + static_cast<ptrdiff_t>(hi), better);
    double mass = 0.0;
    for (size_t j = lo; j < mid; ++j) mass += candidates_[j].weight;
    if (before + mass >= target) {
      hi = mid;
    } else {
      before += mass;
      lo = mid;
    }
  }
  std::sort(first + static_cast<ptrdiff_t>(lo), first + static_cast<ptrdiff_t>(hi), better);
  size_t j = lo;
  while (j + 1 < hi && before + candidates_[j].weight < target) before += candidates_[j++].weight;
  // candidates_[j] is the worst of the nucleus: [lo, hi) is sorted and [0, lo) is better.
  return {n_before + j + 1, candidates_[j]};
}

int32_t Sampler::draw(double u, float l_max, double z1) {
  const size_t vocab = logits_.size();
  const float* l = logits_.data();
  float* w = weights_.data();
  const float temperature = params_.temperature;
  const float min_p = params_.min_p;
  // The most likely token has weight e^0 = 1 exactly and survives every filter, so p / p_max is
  // the weight itself and min-p compares weights with min_p.

  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab) {
    gather_top_k(l_max);
  } else if (params_.top_p < 1.0f) {
    gather_nucleus_candidates(l_max, z1);
  } else {
    // Neither top-k nor top-p: every token in id order, no candidates needed.
    if (temperature == 1.0f && min_p == 0.0f) return find_cumulative(w, vocab, blocks_, u * z1);
    if (temperature != 1.0f) exp_scaled(l, vocab, l_max, temperature, w);
    if (min_p > 0.0f) keep_min_p(w, vocab, min_p);
    return find_cumulative(w, vocab, blocks_, u * sum_blocks(w, vocab, blocks_));
  }

  // gather_top_k leaves the worst candidate last.
  Nucleus kept_set{n_candidates_, candidates_[n_candidates_ - 1]};
  if (params_.top_p < 1.0f) kept_set = select_nucleus(static_cast<double>(params_.top_p) * candidates_z_, l_max);
  const size_t n = kept_set.n;
  const Candidate worst = kept_set.worst;
  const BetterCandidate better;

  if (n <= kSortedDrawMax) {
    // Gather the kept set in front (top-p may have left it in pieces), best first.
    const auto first = candidates_.begin();
    const auto end = std::partition(first, first + static_cast<ptrdiff_t>(n_candidates_),
                                    [&](const Candidate& c) { return !better(worst, c); });
    BF_CHECK(static_cast<size_t>(end - first) == n, "the kept set has ", n, " tokens but ", end - first,
             " are at or above its worst");
    std::sort(first, end, better);
    auto kept = [min_p](float weight) { return weight >= min_p ? weight : 0.0f; };
    double kept_z = 0.0;
    for (size_t j = 0; j < n; ++j) kept_z += kept(candidates_[j].weight);
    const double target = u * kept_z;
    double cum = 0.0;
    int32_t chosen = -1;
    for (size_t j = 0; j < n; ++j) {
      const float weight = kept(candidates_[j].weight);
      if (weight <= 0.0f) continue;
      cum += weight;
      chosen = candidates_[j].id;
      if (cum > target) break;
    }
    BF_CHECK(chosen >= 0, "no candidate has positive weight");
    return chosen;
  }

  // A large kept set: one pass in id order over the vocabulary, keeping the tokens at or above
  // the worst kept one. Only the whole-vocabulary gathers keep this many, and they weighed every
  // token.
  BF_CHECK(n > kHeapTopK, "a heap-selected set reached the id-order draw");
  const int32_t cut_key = order_key(worst.logit);
  const int32_t floor = std::bit_cast<int32_t>(min_p);
  for (size_t i = 0; i < vocab; ++i) {
    const int32_t key = order_key(l[i]);
    const bool in = key > cut_key || (key == cut_key && static_cast<int32_t>(i) <= worst.id);
    w[i] = in && std::bit_cast<int32_t>(w[i]) >= floor ? w[i] : 0.0f;
  }
  return find_cumulative(w, vocab, blocks_, u * sum_blocks(w, vocab, blocks_));
}

template <typename Keep>
void Sampler::collect_candidates(Keep keep) {
  // Every token is written and the count advances only for kept ones: no branch per token,
  // whose outcome would be as good as random to the branch predictor.
  const float* l = logits_.data();
  const float* w = weights_.data();
  size_t n = 0;
  for (size_t i = 0; i < logits_.size(); ++i) {
    candidates_[n] = {l[i], w[i], static_cast<int32_t>(i)};
    n += keep(l[i]) ? 1 : 0;
  }
  n_candidates_ = n;
}

void Sampler::gather_top_k(float l_max) {
  const size_t vocab = logits_.size();
  const float* l = logits_.data();
  float* w = weights_.data();
  const float temperature = params_.temperature;
  const size_t k = static_cast<size_t>(params_.top_k);
  if (candidates_.size() < vocab) candidates_.resize(vocab);
  candidates_z_ = 0.0;
  if (k <= kHeapTopK) {
    select_top(k, top_ids_);  // best first
    n_candidates_ = top_ids_.size();
    for (size_t j = 0; j < n_candidates_; ++j) {
      const int32_t id = top_ids_[j];
      const float weight = temperature == 1.0f ? w[id] : exp_nonpositive((l[id] - l_max) / temperature);
      candidates_[j] = {l[id], weight, id};
      candidates_z_ += weight;
    }
    candidates_bottom_ = candidates_[n_candidates_ - 1].logit;
    return;
  }
  if (temperature != 1.0f) exp_scaled(l, vocab, l_max, temperature, w);
  collect_candidates([](float logit) { return logit != -kInf; });
  const size_t n_kept = std::min(k, n_candidates_);
  const auto first = candidates_.begin();
  std::nth_element(first, first + static_cast<ptrdiff_t>(n_kept - 1), first + static_cast<ptrdiff_t>(n_candidates_),
                   BetterCandidate{});  // the worst kept goes last
  n_candidates_ = n_kept;
  candidates_bottom_ = candidates_[n_kept - 1].logit;
  for (size_t j = 0; j < n_kept; ++j) candidates_z_ += candidates_[j].weight;
}

void Sampler::gather_nucleus_candidates(float l_max, double z1) {
  const size_t vocab = logits_.size();
  const float temperature = params_.temperature;
  if (candidates_.size() < vocab) candidates_.resize(vocab);
  if (temperature != 1.0f) exp_scaled(logits_.data(), vocab, l_max, temperature, weights_.data());
  candidates_z_ = temperature == 1.0f ? z1 : sum_blocks(weights_.data(), vocab, blocks_);
  // Tokens of weight below tau = (1 - top_p) z / vocab weigh less than (1 - top_p) z together,
  // so the tokens above them already reach top_p z: the nucleus ends before them. Taken as a
  // logit threshold so that the candidates are a best-first run, with half of tau as room for
  // the rounding of exp.
  const double tau = 0.5 * (1.0 - params_.top_p) * candidates_z_ / static_cast<double>(vocab);
  const float bottom =
      std::max(static_cast<float>(l_max + temperature * std::log(tau)), std::numeric_limits<float>::lowest());
  collect_candidates([bottom](float logit) { return logit >= bottom; });
  candidates_bottom_ = bottom;
}

}  // namespace bf
