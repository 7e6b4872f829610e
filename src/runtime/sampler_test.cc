#include "batch_forge/runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "batch_forge/core/error.h"

namespace bf {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<double> log_softmax(const std::vector<double>& l) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : l) m = std::max(m, x);
  double s = 0;
  for (double x : l) s += std::exp(x - m);
  std::vector<double> out(l.size());
  for (size_t i = 0; i < l.size(); ++i) out[i] = l[i] - m - std::log(s);
  return out;
}

std::vector<double> softmax(const std::vector<double>& l, double temperature) {
  std::vector<double> scaled(l.size());
  for (size_t i = 0; i < l.size(); ++i) scaled[i] = l[i] / temperature;
  std::vector<double> p = log_softmax(scaled);
  for (double& x : p) x = std::exp(x);
  return p;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Logits whose softmax at temperature 1 is exactly `probs` (up to float rounding).
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(p > 0 ? static_cast<float>(std::log(p)) : -kInf);
  return l;
}

std::vector<int64_t> draw_counts(const SamplingParams& params, const std::vector<float>& logits, int n) {
  Sampler sampler(params);
  std::vector<int64_t> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[sampler.sample(logits, {}, {}).id];
  return counts;
}

// Each count within 5 binomial standard deviations of n * p, plus 3 counts of slack for tokens so
// rare that one occurrence is already several deviations (a false alarm well under once in a
// million bins; the draws are seeded, so the outcome is fixed anyway). A token of probability 0
// never appears.
void expect_frequencies(const std::vector<int64_t>& counts, const std::vector<double>& probs, const std::string& what) {
  ASSERT_EQ(counts.size(), probs.size());
  const double n = static_cast<double>(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << what << ": token " << i << " is outside the allowed set";
      continue;
    }
    const double sigma = std::sqrt(n * probs[i] * (1 - probs[i]));
    EXPECT_NEAR(static_cast<double>(counts[i]), n * probs[i], 5 * sigma + 3) << what << ": token " << i;
  }
}

// probs restricted to `keep` and renormalized.
std::vector<double> restrict_to(std::vector<double> probs, const std::vector<int>& keep) {
  std::vector<double> out(probs.size(), 0.0);
  double z = 0;
  for (int i : keep) z += probs[i];
  for (int i : keep) out[i] = probs[i] / z;
  return out;
}

TEST(SamplerRng, SplitMix64MatchesTheReference) {
  // The published first outputs of Vigna's splitmix64.c from state 0.
  SplitMix64 mix(0);
  EXPECT_EQ(mix.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(mix.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(mix.next(), 0x06c45d188009454fULL);
}

TEST(SamplerRng, Xoshiro256StarStarMatchesTheReference) {
  // Outputs of the reference xoshiro256starstar.c from the state {1, 2, 3, 4}.
  auto rng = Xoshiro256StarStar::from_state({1, 2, 3, 4});
  const uint64_t want[] = {11520ULL,
                           0ULL,
                           1509978240ULL,
                           1215971899390074240ULL,
                           1216172134540287360ULL,
                           607988272756665600ULL,
                           16172922978634559625ULL,
                           8476171486693032832ULL,
                           10595114339597558777ULL,
                           2904607092377533576ULL};
  for (uint64_t w : want) EXPECT_EQ(rng.next(), w);
}

TEST(SamplerRng, SeedFillsTheStateFromSplitMix64AndUniformUsesTheTop53Bits) {
  SplitMix64 mix(42);
  const std::array<uint64_t, 4> state{mix.next(), mix.next(), mix.next(), mix.next()};
  Xoshiro256StarStar seeded(42);
  auto raw = Xoshiro256StarStar::from_state(state);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = raw.next();
    const double u = seeded.uniform();
    EXPECT_EQ(u, static_cast<double>(x >> 11) / 9007199254740992.0);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
}

TEST(Sampler, GreedyIsTheArgmaxWithTiesToTheLowestId) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.sample(std::vector<float>{1, 5, 5, 2}, {}, {}).id, 1);
  EXPECT_EQ(s.sample(std::vector<float>{kNaN, -kInf, 3, 3}, {}, {}).id, 2);
  EXPECT_EQ(s.sample(std::vector<float>{-7}, {}, {}).id, 0);
  // Greedy reads no random numbers: every seed gives the same answer.
  for (uint64_t seed : {0, 1, 99}) {
    p.seed = seed;
    p.top_k = 1;
    Sampler t(p);
    EXPECT_EQ(t.sample(std::vector<float>{0.5f, 0.25f, 0.75f, 0.75f}, {}, {}).id, 2);
  }
}

TEST(Sampler, GreedyUsesThePenalizedLogits) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  const std::vector<int32_t> prompt{0};
  // 4 / 2 = 2 < 3: token 0 loses its lead once it has been seen.
  EXPECT_EQ(s.sample(std::vector<float>{4, 3, 1}, prompt, {}).id, 1);
}

TEST(Sampler, TemperatureGivesSoftmaxOfScaledLogits) {
  const std::vector<float> logits{1.0f, 2.0f, 0.5f, -1.0f, 1.5f, kNaN, 0.0f};
  for (float temperature : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = temperature;
    p.seed = 1234;
    std::vector<double> l = to_double(logits);
    l[5] = -std::numeric_limits<double>::infinity();
    expect_frequencies(draw_counts(p, logits, 20000), softmax(l, temperature), cat("T=", temperature));
  }
}

TEST(Sampler, TopKKeepsExactlyTheKLargest) {
  // Sorted by logit: 3 (2.0), 1 (1.5), 4 (1.5), 0 (1.0), 2 (0.5). The tie at the boundary goes to
  // the lower id.
  const std::vector<float> logits{1.0f, 1.5f, 0.5f, 2.0f, 1.5f};
  const std::vector<double> probs = softmax(to_double(logits), 1.0);
  SamplingParams p;
  p.seed = 5;
  p.top_k = 2;
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {3, 1}), "top_k=2");
  p.top_k = 3;
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {3, 1, 4}), "top_k=3");
  p.top_k = 1;
  expect_frequencies(draw_counts(p, logits, 2000), restrict_to(probs, {3}), "top_k=1");
  p.top_k = 50;  // more than the vocabulary: off
  expect_frequencies(draw_counts(p, logits, 20000), probs, "top_k=50");
}

TEST(Sampler, TopPKeepsTheShortestRunReachingP) {
  // Probabilities 0.5, 0.25, 0.15, 0.1 in the order 2, 0, 3, 1.
  const std::vector<float> logits = logits_of({0.25, 0.1, 0.5, 0.15});
  const std::vector<double> probs{0.25, 0.1, 0.5, 0.15};
  SamplingParams p;
  p.seed = 77;
  p.top_p = 0.4f;  // 0.5 >= 0.4
  expect_frequencies(draw_counts(p, logits, 2000), restrict_to(probs, {2}), "top_p=0.4");
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.75
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {2, 0}), "top_p=0.7");
  p.top_p = 0.8f;  // 0.75 < 0.8 <= 0.9
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {2, 0, 3}), "top_p=0.8");
  p.top_p = 0.95f;
  expect_frequencies(draw_counts(p, logits, 20000), probs, "top_p=0.95");
}

TEST(Sampler, TopPRenormalizesOverTheTopKSet) {
  // After top_k=3 the probabilities are 0.5, 0.25, 0.15 over 0.9: 0.556, 0.278, 0.167, so
  // top_p=0.8 stops after two tokens; without top-k it needs three (0.75 < 0.8).
  const std::vector<float> logits = logits_of({0.25, 0.1, 0.5, 0.15});
  const std::vector<double> probs{0.25, 0.1, 0.5, 0.15};
  SamplingParams p;
  p.seed = 3;
  p.top_k = 3;
  p.top_p = 0.8f;
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {2, 0}), "top_k=3 top_p=0.8");
}

TEST(Sampler, TemperatureComesBeforeTopP) {
  // At T=2 the probabilities of 0.5, 0.25, 0.15, 0.1 become 0.370, 0.262, 0.203, 0.166, so
  // top_p=0.65 needs three tokens (0.632 < 0.65); at T=1 it needs two.
  const std::vector<float> logits = logits_of({0.5, 0.25, 0.15, 0.1});
  SamplingParams p;
  p.seed = 11;
  p.temperature = 2.0f;
  p.top_p = 0.65f;
  const std::vector<double> hot = softmax(to_double(logits), 2.0);
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(hot, {0, 1, 2}), "T=2 top_p=0.65");
  p.temperature = 1.0f;
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to({0.5, 0.25, 0.15, 0.1}, {0, 1}), "T=1 top_p=0.65");
}

TEST(Sampler, MinPKeepsTokensWithinTheRatioOfTheMostLikely) {
  const std::vector<double> probs{0.1, 0.5, 0.15, 0.25};
  const std::vector<float> logits = logits_of(probs);
  SamplingParams p;
  p.seed = 8;
  p.min_p = 0.4f;  // p >= 0.2: 0.5, 0.25
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {1, 3}), "min_p=0.4");
  p.min_p = 0.25f;  // p >= 0.125: 0.5, 0.25, 0.15
  expect_frequencies(draw_counts(p, logits, 20000), restrict_to(probs, {1, 3, 2}), "min_p=0.25");
  // After temperature 2 the ratios are sqrt(0.2 .. 1) >= 0.447, so min_p=0.4 keeps everything.
  p.temperature = 2.0f;
  p.min_p = 0.4f;
  expect_frequencies(draw_counts(p, logits, 20000), softmax(to_double(logits), 2.0), "T=2 min_p=0.4");
  // min_p=1 keeps the tokens that tie for the maximum.
  SamplingParams q;
  q.seed = 9;
  q.min_p = 1.0f;
  expect_frequencies(draw_counts(q, {2.0f, 5.0f, 5.0f, 1.0f}, 4000), {0, 0.5, 0.5, 0}, "min_p=1");
}

TEST(Sampler, MinPComesAfterTopP) {
  // top_p=0.8 keeps 0.5, 0.25, 0.15; min_p=0.15 then drops nothing (ratios 1, 0.5, 0.3), and
  // the token of 0.1 stays out although its ratio 0.2 passes min_p on its own.
  const std::vector<double> probs{0.5, 0.25, 0.15, 0.1};
  SamplingParams p;
  p.seed = 21;
  p.top_p = 0.8f;
  p.min_p = 0.15f;
  expect_frequencies(draw_counts(p, logits_of(probs), 20000), restrict_to(probs, {0, 1, 2}), "top_p then min_p");
  p.min_p = 0.4f;  // drops the ratio 0.3
  expect_frequencies(draw_counts(p, logits_of(probs), 20000), restrict_to(probs, {0, 1}), "top_p then min_p=0.4");
}

// The chain written out plainly in double precision with a full sort. `ambiguous` is set when a
// cut falls within rounding distance of its threshold, where float and double may disagree.
struct ReferenceChain {
  std::vector<double> probs;
  bool ambiguous = false;
};

ReferenceChain reference_chain(const std::vector<float>& logits, const SamplingParams& p) {
  const size_t v = logits.size();
  std::vector<int> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  const double l_max = logits[order[0]];
  std::vector<double> w(v);
  for (size_t i = 0; i < v; ++i) w[i] = std::exp((logits[i] - l_max) / p.temperature);
  ReferenceChain out;
  size_t n = p.top_k > 0 ? std::min<size_t>(p.top_k, v) : v;
  if (p.top_p < 1.0f) {
    double z = 0;
    for (size_t j = 0; j < n; ++j) z += w[order[j]];
    const double target = p.top_p * z;
    double cum = 0;
    size_t m = 0;
    while (m < n) {
      const double before = cum;
      cum += w[order[m++]];
      if (cum >= target) {
        out.ambiguous = cum - target < 1e-5 * z || target - before < 1e-5 * z;
        break;
      }
    }
    n = m;
  }
  out.probs.assign(v, 0.0);
  double z = 0;
  for (size_t j = 0; j < n; ++j) {
    const double wj = w[order[j]];
    if (std::abs(wj - p.min_p) < 1e-5) out.ambiguous = true;
    if (wj >= p.min_p) {
      out.probs[order[j]] = wj;
      z += wj;
    }
  }
  for (double& x : out.probs) x /= z;
  return out;
}

TEST(Sampler, FiltersOnALargeVocabularyMatchAFullSortReference) {
  std::mt19937 gen(2024);
  // Peaked logits (spread 3) keep small sets; flat ones (spread 0.3) keep thousands of tokens,
  // which takes the large-set paths (top-k by nth_element, a kept set drawn in id order).
  struct Case {
    float spread;
    int32_t top_k;
    float top_p, min_p, temperature;
  };
  const Case cases[] = {{3.0f, 5, 1.0f, 0.0f, 1.0f},    {3.0f, 40, 1.0f, 0.0f, 0.7f},    {3.0f, 0, 0.9f, 0.0f, 1.0f},
                        {3.0f, 0, 0.5f, 0.0f, 0.8f},    {3.0f, 1000, 0.95f, 0.0f, 1.2f}, {3.0f, 0, 1.0f, 0.05f, 1.0f},
                        {3.0f, 50, 0.9f, 0.02f, 1.0f},  {3.0f, 0, 0.99f, 0.0f, 0.3f},    {3.0f, 3000, 1.0f, 0.1f, 1.5f},
                        {0.3f, 6000, 1.0f, 0.0f, 1.0f}, {0.3f, 0, 0.9f, 0.0f, 1.0f},     {0.3f, 0, 0.6f, 0.5f, 0.8f},
                        {0.3f, 9000, 0.7f, 0.0f, 1.3f}, {0.3f, 2000, 0.9f, 0.0f, 1.0f}};
  for (const Case& c : cases) {
    std::normal_distribution<float> normal(0.0f, c.spread);
    SamplingParams p;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.temperature = c.temperature;
    const std::string what =
        cat("spread ", c.spread, " top_k=", c.top_k, " top_p=", c.top_p, " min_p=", c.min_p, " T=", c.temperature);
    // New logits until no cut is within rounding of its threshold (nearly always the first).
    std::vector<float> logits(16000);
    ReferenceChain ref;
    for (int attempt = 0; attempt < 5; ++attempt) {
      for (float& x : logits) x = normal(gen);
      ref = reference_chain(logits, p);
      if (!ref.ambiguous) break;
    }
    ASSERT_FALSE(ref.ambiguous) << what;
    expect_frequencies(draw_counts(p, logits, 600), ref.probs, what);
  }
}

TEST(Sampler, LogprobsAreTheDoubleLogSoftmaxWhateverTheFilters) {
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> logits(5000);
  for (float& x : logits) x = normal(gen);
  logits[17] = kNaN;
  logits[18] = -kInf;
  std::vector<double> l = to_double(logits);
  l[17] = -std::numeric_limits<double>::infinity();  // NaN counts as -inf
  const std::vector<double> want = log_softmax(l);
  for (float temperature : {0.0f, 0.3f, 1.0f, 2.5f}) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 10;
    p.top_p = 0.9f;
    p.top_logprobs = 20;
    Sampler s(p);
    for (int i = 0; i < 50; ++i) {
      const SampledToken t = s.sample(logits, {}, {});
      EXPECT_NEAR(t.logprob, want[t.id], 2e-5) << "T=" << temperature;
      ASSERT_EQ(t.top.size(), 20u);
      for (const TokenLogprob& alt : t.top) EXPECT_NEAR(alt.logprob, want[alt.id], 2e-5);
    }
  }
}

TEST(Sampler, TopLogprobsAreTheMostLikelySortedWithTiesToTheLowerId) {
  const std::vector<float> logits{0.0f, 3.0f, 1.0f, 3.0f, kNaN, 2.0f, -kInf, 1.0f};
  SamplingParams p;
  p.top_logprobs = 5;
  Sampler s(p);
  const SampledToken t = s.sample(logits, {}, {});
  std::vector<double> l = to_double(logits);
  l[4] = -std::numeric_limits<double>::infinity();
  const std::vector<double> want = log_softmax(l);
  const std::vector<int32_t> ids{1, 3, 5, 2, 7};
  ASSERT_EQ(t.top.size(), ids.size());
  for (size_t j = 0; j < ids.size(); ++j) {
    EXPECT_EQ(t.top[j].id, ids[j]) << j;
    EXPECT_NEAR(t.top[j].logprob, want[ids[j]], 1e-6);
  }
  // Never more than the tokens of finite logit.
  p.top_logprobs = 20;
  Sampler all(p);
  const SampledToken u = all.sample(logits, {}, {});
  ASSERT_EQ(u.top.size(), 6u);
  EXPECT_EQ(u.top.back().id, 0);
  // None asked, none given.
  p.top_logprobs = 0;
  Sampler none(p);
  EXPECT_TRUE(none.sample(logits, {}, {}).top.empty());
}

TEST(Sampler, PenaltiesChangeLogitsExactlyAsSpecified) {
  const std::vector<float> logits{2.0f, -1.0f, 0.5f, 3.0f, -2.5f, 1.0f, 0.0f, 4.0f};
  const std::vector<int32_t> prompt{1, 2, 2, 7};
  const std::vector<int32_t> generated{2, 3, 3, 5, 3, 6};
  SamplingParams p;
  p.repetition_penalty = 1.3f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.top_logprobs = 8;

  std::vector<double> want = to_double(logits);
  const double rep = p.repetition_penalty;
  for (int id : {1, 2, 3, 5, 6, 7}) want[id] = want[id] > 0 ? want[id] / rep : want[id] * rep;  // once each
  const int counts[8] = {0, 0, 1, 3, 0, 1, 1, 0};                                               // in `generated` only
  for (int id = 0; id < 8; ++id)
    if (counts[id] > 0) want[id] -= double{p.frequency_penalty} * counts[id] + double{p.presence_penalty};
  const std::vector<double> want_logprobs = log_softmax(want);

  Sampler s(p);
  const SampledToken t = s.sample(logits, prompt, generated);
  ASSERT_EQ(t.top.size(), 8u);
  for (const TokenLogprob& alt : t.top) EXPECT_NEAR(alt.logprob, want_logprobs[alt.id], 1e-5) << "token " << alt.id;
  EXPECT_NEAR(t.logprob, want_logprobs[t.id], 1e-5);

  // Each penalty alone, negative values included.
  struct Single {
    float repetition, frequency, presence;
  };
  for (const Single& one : {Single{0.8f, 0, 0}, Single{1, -1.5f, 0}, Single{1, 0, -2.0f}, Single{1, 2.0f, 0}}) {
    SamplingParams q;
    q.repetition_penalty = one.repetition;
    q.frequency_penalty = one.frequency;
    q.presence_penalty = one.presence;
    q.top_logprobs = 8;
    std::vector<double> w = to_double(logits);
    if (one.repetition != 1)
      for (int id : {1, 2, 3, 5, 6, 7}) w[id] = w[id] > 0 ? w[id] / one.repetition : w[id] * one.repetition;
    for (int id = 0; id < 8; ++id)
      if (counts[id] > 0) w[id] -= double{one.frequency} * counts[id] + double{one.presence};
    const std::vector<double> wl = log_softmax(w);
    Sampler r(q);
    for (const TokenLogprob& alt : r.sample(logits, prompt, generated).top)
      EXPECT_NEAR(alt.logprob, wl[alt.id], 1e-5)
          << "rep " << one.repetition << " freq " << one.frequency << " pres " << one.presence << " token " << alt.id;
  }
}

TEST(Sampler, ScratchStaysCleanAcrossCallsVocabularyChangesAndErrors) {
  SamplingParams p;
  p.repetition_penalty = 1.5f;
  p.frequency_penalty = 0.75f;
  p.top_logprobs = 6;
  const std::vector<float> small{1, 2, 3, -1, 0.5f, 0};
  const std::vector<float> large{1, 2, 3, -1, 0.5f, 0, 1, 1, 1, 1};
  const std::vector<int32_t> prompt{0, 1};
  const std::vector<int32_t> generated{4, 4, 2};
  const std::vector<int32_t> bad{4, 12};

  Sampler fresh(p);
  const SampledToken want = fresh.sample(small, prompt, generated);
  Sampler used(p);
  used.sample(small, prompt, generated);
  used.sample(large, generated, prompt);
  EXPECT_THROW(used.sample(small, prompt, bad), Error);
  const SampledToken got = used.sample(small, prompt, generated);
  ASSERT_EQ(got.top.size(), want.top.size());
  for (size_t j = 0; j < want.top.size(); ++j) {
    EXPECT_EQ(got.top[j].id, want.top[j].id);
    EXPECT_EQ(got.top[j].logprob, want.top[j].logprob);
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::mt19937 gen(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> steps(200, std::vector<float>(1000));
  for (auto& step : steps)
    for (float& x : step) x = normal(gen);

  auto run = [&](uint64_t seed, Sampler* interleaved) {
    SamplingParams p;
    p.seed = seed;
    p.top_p = 0.95f;
    Sampler s(p);
    std::vector<int32_t> tokens;
    for (const auto& step : steps) {
      if (interleaved) interleaved->sample(step, {}, {});
      tokens.push_back(s.sample(step, {}, tokens).id);
    }
    return tokens;
  };
  const std::vector<int32_t> a = run(42, nullptr);
  EXPECT_EQ(run(42, nullptr), a);
  EXPECT_NE(run(43, nullptr), a);
  // Another request sampling in between changes nothing.
  SamplingParams other;
  other.seed = 42;
  Sampler neighbour(other);
  EXPECT_EQ(run(42, &neighbour), a);
}

TEST(Sampler, DrawIsTheInverseCdfAtOneUniformPerStep) {
  // With equal logits every kept token has weight 1 and ties keep the lower ids, so the kept set
  // is ids [0, n) and the token is floor(u * n) for the step's uniform u from the documented
  // generator, whichever path selects and draws. Half of the zeros are -0, which must tie +0.
  std::vector<float> logits(10000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = i % 2 ? -0.0f : 0.0f;
  struct Case {
    int32_t top_k;
    float top_p, temperature;
    int kept;
  };
  const Case cases[] = {{0, 1.0f, 1.0f, 10000},   {0, 1.0f, 0.6f, 10000},   {0, 0.5f, 1.0f, 5000},
                        {0, 0.25f, 1.7f, 2500},   {1000, 1.0f, 1.0f, 1000}, {3000, 1.0f, 0.9f, 3000},
                        {6000, 1.0f, 1.0f, 6000}, {6000, 0.5f, 1.0f, 3000}, {200, 0.5f, 2.0f, 100}};
  for (const Case& c : cases) {
    SamplingParams p;
    p.seed = 20250101;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.temperature = c.temperature;
    Sampler s(p);
    Xoshiro256StarStar rng(p.seed);
    for (int i = 0; i < 300; ++i)
      ASSERT_EQ(s.sample(logits, {}, {}).id, static_cast<int32_t>(std::floor(rng.uniform() * c.kept)))
          << "step " << i << " top_k=" << c.top_k << " top_p=" << c.top_p << " T=" << c.temperature;
  }
}

struct BadParam {
  std::string field;
  std::function<void(SamplingParams&)> set;
};

TEST(SamplingParams, RejectsEachFieldOutOfRangeByName) {
  const std::vector<BadParam> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [](SamplingParams& p) { p.temperature = kNaN; }},
      {"temperature", [](SamplingParams& p) { p.temperature = kInf; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = kNaN; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = kInf; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = 2.5f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -2.01f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -3.0f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = kNaN; }},
      {"top_logprobs", [](SamplingParams& p) { p.top_logprobs = 21; }},
      {"top_logprobs", [](SamplingParams& p) { p.top_logprobs = -1; }},
  };
  for (const BadParam& c : cases) {
    SamplingParams p;
    c.set(p);
    try {
      Sampler s(p);
      ADD_FAILURE() << "accepted a bad " << c.field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_EQ(e.component(), "sampler");
      EXPECT_NE(e.message().find(c.field + " is "), std::string::npos) << e.what();
      EXPECT_NE(e.message().find("must be"), std::string::npos) << e.what();
    }
  }
}

TEST(SamplingParams, AcceptsTheEdgesOfEachRange) {
  SamplingParams p;
  p.temperature = 0;
  p.top_k = 1 << 30;
  p.top_p = 1;
  p.min_p = 1;
  p.repetition_penalty = 1e-3f;
  p.frequency_penalty = -2;
  p.presence_penalty = 2;
  p.top_logprobs = 20;
  EXPECT_NO_THROW(p.validate());
  p.top_p = 1e-6f;
  p.min_p = 0;
  p.frequency_penalty = 2;
  p.presence_penalty = -2;
  p.top_logprobs = 0;
  EXPECT_NO_THROW(p.validate());
}

void expect_invalid(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one saying '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.what();
  }
}

TEST(Sampler, RejectsLogitsThatCannotBeSampled) {
  Sampler s(SamplingParams{});
  expect_invalid([&] { s.sample(std::vector<float>{}, {}, {}); }, "logits are empty");
  expect_invalid([&] { s.sample(std::vector<float>{kNaN, -kInf, kNaN}, {}, {}); }, "all 3 logits are -inf or NaN");
  expect_invalid([&] { s.sample(std::vector<float>{1, kInf}, {}, {}); }, "logit of token 1 is +inf");
  SamplingParams greedy;
  greedy.temperature = 0;
  Sampler g(greedy);
  expect_invalid([&] { g.sample(std::vector<float>{-kInf}, {}, {}); }, "-inf or NaN");
  SamplingParams encourage;
  encourage.repetition_penalty = 1e-3f;
  Sampler e(encourage);
  const std::vector<int32_t> prompt{0};
  expect_invalid([&] { e.sample(std::vector<float>{3e38f, 0.0f}, prompt, {}); }, "pushes the logit of token 0 to +inf");
}

TEST(Sampler, RejectsTokenIdsOutsideTheVocabularyWhenPenalizing) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  Sampler s(p);
  const std::vector<float> logits(10, 0.0f);
  const std::vector<int32_t> bad{3, 10};
  expect_invalid([&] { s.sample(logits, {}, bad); }, "generated[1] is token id 10 but the vocabulary is [0, 10)");
  // The prompt is read only by the repetition penalty.
  EXPECT_NO_THROW(s.sample(logits, bad, {}));
  p.repetition_penalty = 1.1f;
  Sampler r(p);
  const std::vector<int32_t> negative{-1};
  expect_invalid([&] { r.sample(logits, negative, {}); }, "prompt[0] is token id -1");
}

}  // namespace
}  // namespace bf
