// Token sampling: turns one step's logits into the next token of one request.
//
// One Sampler belongs to one request and carries its random generator, so a request's tokens
// depend only on its seed and on its own logits, never on which other requests share the batch.
//
// The chain, in order (vLLM's and llama.cpp's practice):
//   1. sanitize    NaN logits become -inf (and -0 becomes +0); a +inf logit, empty logits or
//                  all -inf are errors.
//   2. penalties   over the penalized logits l:
//                  a. repetition (HF / llama.cpp / vLLM): every distinct token id that occurs in
//                     `prompt` or `generated` gets l > 0 ? l / repetition_penalty
//                                                       : l * repetition_penalty,
//                     once, however often it occurs;
//                  b. frequency and presence (OpenAI / vLLM), over `generated` only:
//                     l -= frequency_penalty * count + presence_penalty * (count > 0).
//                  The window is whatever the caller passes: hand a subspan to penalize only the
//                  last n tokens (llama.cpp's penalty_last_n).
//   3. logprobs    log-softmax of the penalized logits at temperature 1, before any filter:
//                  SampledToken::logprob and ::top report this distribution, so they do not
//                  change with the temperature, top-k, top-p or min-p a request asks for.
//   4. temperature 0 → greedy: the largest penalized logit, ties to the lowest id; steps 5-8 are
//                  skipped and no random number is drawn. Otherwise p ∝ exp(l / temperature).
//   5. top-k       keep the top_k tokens of largest logit, ties to the lower id: exactly top_k
//                  (or every token of finite logit, if there are fewer).
//   6. top-p       over the top-k set renormalized (the whole vocabulary without top-k), keep
//                  the shortest run of tokens, larger logit first and ties to the lower id,
//                  whose probability sums to at least top_p (the token that crosses top_p
//                  stays).
//   7. min-p       keep tokens with p >= min_p * p_max (a ratio, so the same over any
//                  renormalization).
//   8. draw        renormalize what is left and invert its cumulative sum at one uniform number
//                  from the request's generator (one draw per non-greedy call, even when a
//                  single token is left, so the stream position counts sampled steps).
// Tokens of logit -inf (after penalties) are never candidates.
//
// Cost per call for a vocabulary of V: a handful of passes over the logits that the compiler
// vectorizes (copy, max, one exp per logit for the log-softmax, a blocked sum), plus:
//   - temperature != 1 or min-p, without top-k/top-p: one more exp pass and a blocked search;
//   - top-k <= 1024: one scan with a k-heap that skips 64-token blocks below the k-th best, and
//     a sort of the k kept, so the vocabulary is never sorted; a larger top-k: nth_element;
//   - top-p: the tokens of weight below (1 - top_p) Z / (2 V) cannot be in the nucleus and are
//     dropped; the rest go into 1024 logit bins, whose weights locate the bin where the nucleus
//     ends, and a quickselect on weight (nth_element halving) finds the cut inside that bin.
//     Expected linear time, never a full sort, however flat the distribution;
//   - penalties: O(|prompt| + |generated|), only when a penalty is in effect.
// Scratch buffers live in the Sampler and are reused, so a steady vocabulary size allocates
// nothing but the returned `top` vector.
//
// Determinism: e^x is computed by the sampler's own polynomial (not libm), sums run in a fixed
// order, and every selection uses a strict total order (larger logit, then lower id), so a seed
// gives the same tokens on every machine and standard library built with the same floating-point
// contraction (-ffp-contract=off keeps the bits identical across ISAs). The one exception: inside
// its last bin the top-p cut adds weights in the order std::nth_element leaves them, so a cut
// that falls within double rounding (~1e-15 relative) of top_p may differ between standard
// libraries.
//
// The generator is xoshiro256** (Blackman & Vigna) with its state filled by splitmix64 from the
// seed; both are defined here bit for bit, so a seed gives the same tokens on every platform and
// standard library (std:: distributions do not). Seed 0 is a seed like any other: a server that
// wants distinct streams for requests without a seed must pick seeds itself.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace bf {

struct SamplingParams {
  float temperature = 1.0f;         // [0, +inf); 0 → greedy
  int32_t top_k = 0;                // >= 0; 0 = off; larger than the vocabulary = off
  float top_p = 1.0f;               // (0, 1]; 1 = off
  float min_p = 0.0f;               // [0, 1]; 0 = off
  float repetition_penalty = 1.0f;  // (0, +inf); 1 = off; > 1 discourages repeats
  float frequency_penalty = 0.0f;   // [-2, 2]; 0 = off
  float presence_penalty = 0.0f;    // [-2, 2]; 0 = off
  uint64_t seed = 0;                // the only source of randomness
  int32_t top_logprobs = 0;         // [0, 20]: how many most likely alternatives to report

  static constexpr int32_t kMaxTopLogprobs = 20;

  // Throws Error(kInvalidArgument, "sampler", ...) naming the first field out of range, its
  // value and the allowed range. NaN is out of every range.
  void validate() const;
};

struct TokenLogprob {
  int32_t id;
  float logprob;  // log-softmax of the penalized logits at temperature 1
};

struct SampledToken {
  int32_t id;
  float logprob;  // of `id`, same distribution as TokenLogprob::logprob
  // The min(top_logprobs, number of tokens of finite logit) most likely tokens, most likely
  // first, ties to the lower id. It may or may not contain `id`.
  std::vector<TokenLogprob> top;
};

// splitmix64 (Vigna): each call adds the golden-ratio increment and mixes. Seeds xoshiro.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();

 private:
  uint64_t state_;
};

// xoshiro256** 1.0 (Blackman & Vigna), period 2^256 - 1.
class Xoshiro256StarStar {
 public:
  // State words are four successive splitmix64 outputs from `seed` (never all zero).
  explicit Xoshiro256StarStar(uint64_t seed);
  // A raw state, for checking against the reference implementation; must not be all zero.
  static Xoshiro256StarStar from_state(const std::array<uint64_t, 4>& state);

  uint64_t next();
  // Uniform in [0, 1) with 53 random bits: (next() >> 11) * 2^-53.
  double uniform();

 private:
  Xoshiro256StarStar() = default;
  std::array<uint64_t, 4> s_{};
};

class Sampler {
 public:
  // Validates `params` (see SamplingParams::validate) and seeds the generator from params.seed.
  explicit Sampler(const SamplingParams& params);
  Sampler(Sampler&&) noexcept = default;
  Sampler& operator=(Sampler&&) noexcept = default;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  const SamplingParams& params() const { return params_; }

  // logits: [vocab], the model's raw scores for the next token. prompt, generated: the request's
  // token ids so far, each in [0, vocab) (checked only when a penalty reads them). Throws
  // Error(kInvalidArgument, "sampler", ...) for empty logits, a +inf logit, no finite logit
  // left after penalties, or a token id outside the vocabulary.
  SampledToken sample(std::span<const float> logits, std::span<const int32_t> prompt,
                      std::span<const int32_t> generated);

 private:
  // A token still in the running, with what the selections compare held in place, so that
  // nth_element and sort move records instead of chasing ids into the vocabulary.
  struct Candidate {
    float logit;   // penalized
    float weight;  // exp((logit - l_max) / temperature)
    int32_t id;
  };

  void apply_penalties(std::span<const int32_t> prompt, std::span<const int32_t> generated);
  void fill_top_logprobs(double log_z, SampledToken& out);
  // Steps 5-8 of the chain for one uniform number u. l_max is the largest penalized logit;
  // weights_ and blocks_ hold exp(l - l_max) and its block sums, whose total is z1.
  int32_t draw(double u, float l_max, double z1);
  // ids = the k best tokens of finite logit (fewer if there are fewer), best first.
  void select_top(size_t k, std::vector<int32_t>& ids) const;
  // Candidates for top-k: the top_k best, weighed, with the worst last.
  void gather_top_k(float l_max);
  // Candidates for top-p alone: every token that may be in the nucleus, weighed.
  void gather_nucleus_candidates(float l_max, double z1);
  template <typename Keep>
  void collect_candidates(Keep keep);

  struct Nucleus {
    size_t n;         // how many candidates it holds
    Candidate worst;  // the last of them, best first
  };
  // The shortest best-first run of the candidates whose weight reaches `target`; `top` is the
  // largest logit. Reorders the candidates, and leaves the nucleus in pieces when it bins.
  Nucleus select_nucleus(double target, float top);

  SamplingParams params_;
  Xoshiro256StarStar rng_;

  // Scratch reused across calls, sized to the vocabulary.
  std::vector<float> logits_;          // [vocab] penalized logits
  std::vector<float> weights_;         // [vocab] exp((l - l_max) / temperature), valid for candidates
  std::vector<double> blocks_;         // [ceil(vocab / 1024)] sums of weights_ per 1024 tokens
  std::vector<Candidate> candidates_;  // [vocab], of which the first n_candidates_ are in use
  size_t n_candidates_ = 0;
  double candidates_z_ = 0.0;        // the weight top-p takes its share of: the top-k set's,
                                     // or the whole vocabulary's without top-k
  float candidates_bottom_ = 0.0f;   // no candidate's logit is below this
  std::vector<double> bin_mass_;     // [1024] top-p: weight per logit bin
  std::vector<uint32_t> bin_count_;  // [1024] top-p: candidates per logit bin
  std::vector<int32_t> top_ids_;     // [top_k] or [top_logprobs]
  std::vector<int32_t> counts_;      // [vocab] occurrences in `generated`; zero between calls
  std::vector<uint8_t> seen_;        // [vocab] 1 if in prompt or generated; zero between calls
  std::vector<int32_t> touched_;     // ids whose counts_/seen_ entries this call set
};

}  // namespace bf
