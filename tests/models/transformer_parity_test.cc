// The transformer family against its Equinox reference (python/batch_forge/model_fixtures.py):
// logits at every prefill position and every decode step, chunked prefill, several sequences in
// one batch, forked and continued sequences, and 64 greedy steps with identical tokens — on every
// CPU ISA level this machine has. Plus the errors a caller can provoke.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "backends/cpu/isa.h"
#include "batch_forge/core/error.h"
#include "batch_forge/models/language_model.h"
#include "batch_forge/models/model.h"
#include "batch_forge/runtime/engine.h"
#include "batch_forge/runtime/kv_cache.h"
#include "support/paths.h"

namespace bf {
namespace {

constexpr const char* kConfigs[] = {"gqa_rms_swiglu", "mha_layer_gelu_bias", "mqa_rms_tied"};

std::string fixture_dir() { return testing::binary_dir() + "/fixtures/models/"; }

template <typename T>
std::vector<T> read(const SafetensorsFile& f, const std::string& name, std::vector<int64_t>* dims = nullptr) {
  const TensorInfo* t = f.find(name);
  if (!t) throw Error(ErrorCode::kNotFound, "test", cat(f.path(), ": no tensor ", name));
  std::vector<T> out(t->nbytes() / sizeof(T));
  std::memcpy(out.data(), f.data(*t).data(), t->nbytes());
  if (dims) *dims = t->dims;
  return out;
}

struct Reference {
  std::vector<int32_t> tokens, prompt, greedy;
  std::vector<float> logits;  // [T, vocab]
  int64_t vocab = 0;
  double atol = 0, rtol = 0;

  explicit Reference(const std::string& name) {
    const SafetensorsFile f = SafetensorsFile::open(fixture_dir() + name + ".fixture.safetensors");
    std::vector<int64_t> dims;
    tokens = read<int32_t>(f, "tokens");
    prompt = read<int32_t>(f, "prompt");
    greedy = read<int32_t>(f, "greedy");
    logits = read<float>(f, "logits", &dims);
    vocab = dims[1];
    const auto tol = nlohmann::json::parse(f.metadata().at("batch_forge.fixture.tolerance"));
    atol = tol.at("atol").get<double>();
    rtol = tol.at("rtol").get<double>();
  }

  // Compares rows [first, first + n) of the reference with `got` ([n, vocab]).
  void expect_rows(int64_t first, const float* got, int64_t n, const std::string& what) const {
    int bad = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < vocab; ++c) {
        const double want = logits[static_cast<size_t>((first + r) * vocab + c)], g = got[r * vocab + c];
        if (!(std::abs(g - want) <= atol + rtol * std::abs(want)) && bad++ < 5)
          ADD_FAILURE() << what << ": position " << first + r << " logit " << c << ": got " << g << ", want " << want;
      }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " logits outside atol " << atol << " + rtol " << rtol;
  }
};

using Param = std::tuple<std::string, cpu::Isa>;

class TransformerParity : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const auto& [name, isa] = GetParam();
    if (!cpu::isa_supported(isa)) GTEST_SKIP() << "this CPU lacks " << cpu::isa_name(isa);
    backend_ = create_backend("cpu", BackendOptions{2, KernelPreference::kAuto, std::string(cpu::isa_name(isa))});
    file_ = std::make_unique<ModelFile>(open_model(fixture_dir() + name + ".model.safetensors"));
    model_ = load_language_model(*file_, *backend_);
    ref_ = std::make_unique<Reference>(name);
    pool_ = std::make_unique<KvPool>(*backend_, model_->kv_layout(), kPageSize,
                                     64 * kPageSize * model_->kv_layout().bytes_per_token());
  }

  // Runs `tokens` as new tokens of `seq` (reserving pages), returning their logits.
  std::vector<float> run(SeqState& seq, std::span<const int32_t> tokens, bool all_logits) {
    seq.reserve(static_cast<int64_t>(tokens.size()));
    const SeqInput in{tokens, seq.n_tokens(), seq.pages(), all_logits};
    std::vector<float> logits;
    model_->forward({&in, 1}, pool_->view(), logits);
    seq.commit(static_cast<int64_t>(tokens.size()));
    return logits;
  }

  static constexpr int64_t kPageSize = 8;  // small, so every test crosses page boundaries
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelFile> file_;
  std::unique_ptr<LanguageModel> model_;
  std::unique_ptr<Reference> ref_;
  std::unique_ptr<KvPool> pool_;
};

TEST_P(TransformerParity, PrefillLogitsAtEveryPosition) {
  SeqState seq(*pool_);
  const auto logits = run(seq, ref_->tokens, true);
  ref_->expect_rows(0, logits.data(), static_cast<int64_t>(ref_->tokens.size()), "prefill");
}

TEST_P(TransformerParity, DecodeLogitsAtEveryStep) {
  SeqState seq(*pool_);
  const std::span<const int32_t> t(ref_->tokens);
  auto logits = run(seq, t.first(5), false);  // last row only
  ref_->expect_rows(4, logits.data(), 1, "prefill last");
  for (size_t i = 5; i < t.size(); ++i) {
    logits = run(seq, t.subspan(i, 1), false);
    ref_->expect_rows(static_cast<int64_t>(i), logits.data(), 1, cat("decode step ", i));
  }
}

TEST_P(TransformerParity, ChunkedPrefill) {
  SeqState seq(*pool_);
  const std::span<const int32_t> t(ref_->tokens);
  for (size_t i = 0; i < t.size(); i += 7) {
    const size_t n = std::min<size_t>(7, t.size() - i);
    const auto logits = run(seq, t.subspan(i, n), true);
    ref_->expect_rows(static_cast<int64_t>(i), logits.data(), static_cast<int64_t>(n), cat("chunk at ", i));
  }
}

// Three sequences in one forward: a whole prompt, a decode token of a sequence that already holds
// 20 tokens, and a 6-token chunk after 11 cached ones; each must match the reference rows.
TEST_P(TransformerParity, MixedBatch) {
  const std::span<const int32_t> t(ref_->tokens);
  SeqState a(*pool_), b(*pool_), c(*pool_);
  run(b, t.first(20), false);
  run(c, t.first(11), false);
  a.reserve(static_cast<int64_t>(t.size()));
  b.reserve(1);
  c.reserve(6);
  const SeqInput batch[] = {
      {t, 0, a.pages(), true}, {t.subspan(20, 1), 20, b.pages(), true}, {t.subspan(11, 6), 11, c.pages(), true}};
  std::vector<float> logits;
  model_->forward(batch, pool_->view(), logits);
  const int64_t v = ref_->vocab, n = static_cast<int64_t>(t.size());
  ASSERT_EQ(static_cast<int64_t>(logits.size()), (n + 1 + 6) * v);
  ref_->expect_rows(0, logits.data(), n, "batch: prompt");
  ref_->expect_rows(20, logits.data() + n * v, 1, "batch: decode");
  ref_->expect_rows(11, logits.data() + (n + 1) * v, 6, "batch: chunk");
}

// A conversation continued later re-uses its pages; a fork shares its full pages and both
// branches continue as the reference does.
TEST_P(TransformerParity, ContinueAndFork) {
  const std::span<const int32_t> t(ref_->tokens);
  SeqState seq(*pool_);
  run(seq, t.first(13), false);
  const int64_t used = pool_->used_pages();
  SeqState branch = seq.fork();
  EXPECT_EQ(pool_->used_pages(), used + 1) << "a fork copies only the partial last page";
  EXPECT_EQ(branch.pages().front(), seq.pages().front()) << "full pages are shared";
  auto logits = run(seq, t.subspan(13, 9), true);
  ref_->expect_rows(13, logits.data(), 9, "continued");
  logits = run(branch, t.subspan(13, 4), true);
  ref_->expect_rows(13, logits.data(), 4, "forked branch");
  seq.release();
  branch.release();
  EXPECT_EQ(pool_->used_pages(), 0);
}

TEST_P(TransformerParity, Greedy64StepsIdenticalTokens) {
  SeqState seq(*pool_);
  auto logits = run(seq, ref_->prompt, false);
  std::vector<int32_t> got;
  for (size_t step = 0; step < ref_->greedy.size(); ++step) {
    const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    got.push_back(next);
    logits = run(seq, {&got.back(), 1}, false);
  }
  EXPECT_EQ(got, ref_->greedy);
}

TEST_P(TransformerParity, BadInputIsAClearErrorAndChangesNothing) {
  SeqState seq(*pool_);
  seq.reserve(4);
  std::vector<float> logits;
  auto expect_error = [&](const SeqInput& in, const std::string& needle) {
    try {
      model_->forward({&in, 1}, pool_->view(), logits);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const int32_t out_of_vocab[] = {1, static_cast<int32_t>(model_->vocab_size())};
  expect_error({out_of_vocab, 0, seq.pages(), false}, "outside the vocabulary");
  const int32_t ok[] = {1, 2};
  expect_error({ok, model_->max_seq_len() - 1, seq.pages(), false}, "past the model's context");
  expect_error({ok, 7, seq.pages(), false}, "KV pages");
  const int32_t bad_page[] = {static_cast<int32_t>(pool_->n_pages())};
  expect_error({ok, 0, bad_page, false}, "names KV page");
  // The model still runs afterwards.
  const auto good = run(seq, std::span<const int32_t>(ref_->tokens).first(3), true);
  ref_->expect_rows(0, good.data(), 3, "after errors");
}

TEST_P(TransformerParity, ExhaustedPoolIsAnErrorNotACrash) {
  KvPool small(*backend_, model_->kv_layout(), kPageSize, 2 * kPageSize * model_->kv_layout().bytes_per_token());
  SeqState a(small);
  a.reserve(2 * kPageSize);
  SeqState b(small);
  EXPECT_FALSE(b.try_reserve(1));
  try {
    b.reserve(1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
    EXPECT_NE(std::string(e.what()).find("KV cache full"), std::string::npos) << e.what();
  }
  a.release();
  EXPECT_TRUE(b.try_reserve(1));
}

// q/k/v and gate/up as one matmul or three (two): the same logits, as stored and quantized at
// load (which always fuses).
TEST_P(TransformerParity, FusedProjectionsMatchSeparateOnes) {
  for (const std::string quant : {"", "q8_0", "q4_0"}) {
    LoadOptions fused, separate;
    fused.quant = separate.quant = quant;
    separate.fuse_projections = false;
    auto a = load_language_model(*file_, *backend_, fused);
    auto b = load_language_model(*file_, *backend_, separate);
    std::vector<float> la, lb;
    for (auto* m : {a.get(), b.get()}) {
      SeqState seq(*pool_);
      seq.reserve(static_cast<int64_t>(ref_->tokens.size()));
      const SeqInput in{ref_->tokens, 0, seq.pages(), true};
      m->forward({&in, 1}, pool_->view(), m == a.get() ? la : lb);
    }
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i)
      ASSERT_NEAR(la[i], lb[i], 1e-5 * (1 + std::abs(lb[i]))) << "quant '" << quant << "' logit " << i;
  }
}

// The engine's request path: greedy generation in two turns on one SeqState — the second turn
// feeds only the first turn's pending token and continues from the cached pages — gives the
// reference's greedy tokens.
TEST_P(TransformerParity, EngineGenerateContinuesAcrossTurns) {
  EngineOptions options;
  options.backend_options =
      BackendOptions{2, KernelPreference::kAuto, std::string(cpu::isa_name(std::get<1>(GetParam())))};
  options.kv_memory = 64 * kPageSize * model_->kv_layout().bytes_per_token();
  options.kv_page_size = kPageSize;
  options.prefill_chunk = 5;  // the prompt of 8 goes in two chunks
  auto engine = Engine::open(fixture_dir() + std::get<0>(GetParam()) + ".model.safetensors", options);
  SeqState seq(engine->kv_pool());
  GenerationRequest first;
  first.prompt = ref_->prompt;
  first.sampling.temperature = 0;
  first.max_tokens = 20;
  const GenerationResult a = engine->generate(seq, first);
  EXPECT_EQ(a.finish_reason, "length");
  EXPECT_EQ(seq.n_tokens(), static_cast<int64_t>(ref_->prompt.size() + 19)) << "the last token is pending";
  GenerationRequest second = first;
  second.prompt = a.pending;
  const GenerationResult b = engine->generate(seq, second);
  std::vector<int32_t> got = a.tokens;
  got.insert(got.end(), b.tokens.begin(), b.tokens.end());
  EXPECT_EQ(got, std::vector<int32_t>(ref_->greedy.begin(), ref_->greedy.begin() + 40));
  seq.release();
  EXPECT_EQ(engine->kv_pool().used_pages(), 0);
}

// q8_0 / q4_0 weights packed at load (LoadOptions::pack_weights, the default): a sequence's logits
// have the same bits alone and in one forward with other sequences (the packed kernels' rows of y
// do not depend on the number of rows), so a greedy request gives the same tokens batched or not:
// a decode token (1 row alone, 1 of 25 + 1 + 6 batched) and a whole prompt. The packed and the
// natural-layout int8 kernels differ only in the order of f32 sums.
TEST_P(TransformerParity, PackedWeightsGiveEachSequenceItsOwnBits) {
  const std::span<const int32_t> t(ref_->tokens);
  const int64_t v = ref_->vocab, n = static_cast<int64_t>(t.size());
  for (const std::string quant : {"q8_0", "q4_0"}) {
    LoadOptions packed, natural;
    packed.quant = natural.quant = quant;
    natural.pack_weights = false;
    auto model = load_language_model(*file_, *backend_, packed);
    if (model->describe().find("weights " + quant) == std::string::npos) {
      SUCCEED() << "the matmuls' input sizes are not multiples of 32: --quant leaves them f32, nothing is packed";
      return;
    }
    auto forward = [&](LanguageModel& m, std::span<const SeqInput> batch) {
      std::vector<float> logits;
      m.forward(batch, pool_->view(), logits);
      return logits;
    };
    // Sequences that hold `prefix` tokens of t, committed.
    auto warmed = [&](int64_t prefix) {
      SeqState s(*pool_);
      s.reserve(prefix);
      const SeqInput in[] = {{t.first(static_cast<size_t>(prefix)), 0, s.pages(), false}};
      forward(*model, in);
      s.commit(prefix);
      return s;
    };
    SeqState prompt_alone(*pool_), decode_alone = warmed(20);
    prompt_alone.reserve(n);
    decode_alone.reserve(1);
    const SeqInput prompt_in[] = {{t, 0, prompt_alone.pages(), true}};
    const SeqInput decode_in[] = {{t.subspan(20, 1), 20, decode_alone.pages(), true}};
    const auto want_prompt = forward(*model, prompt_in);
    const auto want_decode = forward(*model, decode_in);

    SeqState a(*pool_), b = warmed(20), c = warmed(11);
    a.reserve(n);
    b.reserve(1);
    c.reserve(6);
    const SeqInput batch[] = {
        {t.subspan(20, 1), 20, b.pages(), true}, {t, 0, a.pages(), true}, {t.subspan(11, 6), 11, c.pages(), true}};
    const auto got = forward(*model, batch);
    ASSERT_EQ(static_cast<int64_t>(got.size()), (1 + n + 6) * v);
    EXPECT_EQ(std::memcmp(got.data(), want_decode.data(), v * sizeof(float)), 0)
        << quant << ": the decode token's logits changed when batched with two other sequences";
    EXPECT_EQ(std::memcmp(got.data() + v, want_prompt.data(), n * v * sizeof(float)), 0)
        << quant << ": the prompt's logits changed when batched with two other sequences";

    // Our int8 kernels on both sides (kAuto would take dequantize-and-sgemm for the natural
    // layout's larger m on AVX2 and scalar, without the activations' int8 rounding).
    auto unpacked = load_language_model(*file_, *backend_, natural);
    SeqState d(*pool_);
    d.reserve(n);
    const SeqInput again[] = {{t, 0, d.pages(), true}};
    backend_->set_kernel_preference(KernelPreference::kCustom);
    const auto other = forward(*unpacked, again);
    backend_->set_kernel_preference(KernelPreference::kAuto);
    ASSERT_EQ(other.size(), want_prompt.size());
    for (size_t i = 0; i < other.size(); ++i)
      ASSERT_NEAR(want_prompt[i], other[i], 1e-4 * (1 + std::abs(other[i])))
          << quant << " packed vs natural, logit " << i;

    // The natural copies --quant made are freed once packed (the packed form is their only copy):
    // the packed model holds about what the unpacked one does (plus a tied head's packed copy and
    // the 16-row padding), not both forms.
    EXPECT_LT(model->weight_memory_bytes(), unpacked->weight_memory_bytes() * 3 / 2) << quant;
    // The vendor side unpacks the packed-only weights' rows into the natural blocks and dequantizes
    // them as it does the natural copy: the same bits as the unpacked model's vendor side.
    backend_->set_kernel_preference(KernelPreference::kVendor);
    SeqState e(*pool_), f(*pool_);
    e.reserve(n);
    f.reserve(n);
    const SeqInput on_e[] = {{t, 0, e.pages(), true}}, on_f[] = {{t, 0, f.pages(), true}};
    const auto vendor_packed_only = forward(*model, on_e);
    const auto vendor_natural = forward(*unpacked, on_f);
    backend_->set_kernel_preference(KernelPreference::kAuto);
    ASSERT_EQ(vendor_packed_only.size(), vendor_natural.size());
    EXPECT_EQ(std::memcmp(vendor_packed_only.data(), vendor_natural.data(), vendor_natural.size() * sizeof(float)), 0)
        << quant << ": the vendor side differs between packed-only and natural weights";
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, TransformerParity,
                         ::testing::Combine(::testing::Values(std::string(kConfigs[0]), std::string(kConfigs[1]),
                                                              std::string(kConfigs[2])),
                                            ::testing::Values(cpu::Isa::kAvx512, cpu::Isa::kAvx2, cpu::Isa::kScalar)),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return std::get<0>(info.param) + "_" + std::string(cpu::isa_name(std::get<1>(info.param)));
                         });

}  // namespace
}  // namespace bf
