// Benchmark group "model" (with --model FILE): the whole forward of a language model, at the
// weight types a user would run it with — as stored, q8_0 and q4_0 (quantized while loading) —
// in two modes:
//   decode   one token per forward at a context of `ctx` tokens, the step a chat spends its time
//            in. bytes = the weights one step reads (every matmul weight, the tied head once, one
//            embedding row) + the K/V of the context; its roofline is bytes ÷ read bandwidth.
//   batched  decode of 16 sequences in one forward (what the scheduler's steps do): tokens/s of
//            the batch beside one sequence's.
//   prefill  a 512-token prompt in one forward (the GEMM path); tokens/s beside decode's.
// Token ids are arbitrary (speed does not depend on them); the KV pool is sized for one sequence.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "batch_forge/core/error.h"
#include "batch_forge/models/language_model.h"
#include "batch_forge/models/model.h"
#include "batch_forge/runtime/kv_cache.h"
#include "bench/bench.h"

namespace bf::bench {
namespace {

constexpr int64_t kPageSize = 16;
constexpr int64_t kPrefill = 512;
constexpr int64_t kBatch = 16;  // sequences of the batched decode row

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<int32_t> token_ids(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919 + salt * 104729) % vocab);
  return ids;
}

void model_group(Context& ctx, std::vector<Record>& out) {
  if (ctx.model.empty()) return;  // only with --model (the no-argument run passes its model)
  const ModelFile file = open_model(ctx.model);
  const std::string name = std::filesystem::path(ctx.model).stem().string();
  for (const std::string quant : {"", "q8_0", "q4_0"}) {
    LoadOptions lo;
    lo.quant = quant;
    std::unique_ptr<LanguageModel> model = load_language_model(file, ctx.backend, lo);
    const int64_t vocab = model->vocab_size();
    const int64_t ctx_len = std::min<int64_t>(ctx.quick ? 128 : 256, model->max_seq_len() / 2);
    const int64_t steps = ctx.quick ? 24 : 64;
    const int64_t prefill = std::min<int64_t>(kPrefill, model->max_seq_len());
    // One sequence of the longest mode, plus the batched decode's private pages (a copied partial
    // page and the steps' tokens per sequence).
    KvPool pool(ctx.backend, model->kv_layout(), kPageSize,
                (std::max(prefill, ctx_len + steps) + kPageSize + kBatch * (steps + 2 * kPageSize)) *
                    model->kv_layout().bytes_per_token());
    std::vector<float> logits;
    const std::string dtype = quant.empty() ? std::string(dtype_name(file.tensor("embed.weight").dtype)) : quant;

    // Decode: fill the context, then time single-token steps around ctx_len.
    {
      SeqState seq(pool);
      const auto prompt = token_ids(ctx_len, vocab, 1);
      seq.reserve(ctx_len);
      const SeqInput in{prompt, 0, seq.pages(), false};
      model->forward({&in, 1}, pool.view(), logits);
      seq.commit(ctx_len);
      std::vector<double> times;
      int32_t token = 1;
      for (int64_t s = 0; s < steps; ++s) {
        seq.reserve(1);
        const SeqInput step{{&token, 1}, seq.n_tokens(), seq.pages(), false};
        const auto t0 = std::chrono::steady_clock::now();
        model->forward({&step, 1}, pool.view(), logits);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        seq.commit(1);
        token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      Record r;
      r.op = "decode";
      r.shape = cat(name, " ctx=", ctx_len + steps / 2);
      r.dtype = dtype;
      r.kernel = "transformer forward";
      r.seconds = median(times);
      r.bytes = static_cast<double>(model->weight_bytes_per_token() +
                                    (ctx_len + steps / 2) * model->kv_layout().bytes_per_token() / 2);
      r.flops = static_cast<double>(model->matmul_flops_per_token());
      r.tokens = 1;
      out.push_back(r);
    }
    // Batched decode: kBatch sequences at the same context (forks of one prefilled sequence, so
    // they share its pages) each feed one token in one forward, as the scheduler's decode steps
    // do: the matmuls run over kBatch rows and read the weights once for all of them.
    {
      SeqState first(pool);
      const auto prompt = token_ids(ctx_len, vocab, 3);
      first.reserve(ctx_len);
      const SeqInput in{prompt, 0, first.pages(), false};
      model->forward({&in, 1}, pool.view(), logits);
      first.commit(ctx_len);
      std::vector<SeqState> seqs;
      for (int64_t b = 0; b < kBatch; ++b) seqs.push_back(first.fork());
      std::vector<int32_t> tokens(kBatch, 1);
      std::vector<double> times;
      for (int64_t s = 0; s < steps / 2; ++s) {
        std::vector<SeqInput> batch;
        for (int64_t b = 0; b < kBatch; ++b) {
          SeqState& q = seqs[static_cast<size_t>(b)];
          q.reserve(1);
          batch.push_back({{&tokens[static_cast<size_t>(b)], 1}, q.n_tokens(), q.pages(), false});
        }
        const auto t0 = std::chrono::steady_clock::now();
        model->forward(batch, pool.view(), logits);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        for (SeqState& q : seqs) q.commit(1);
      }
      Record r;
      r.op = "decode";
      r.shape = cat(name, " ctx=", ctx_len + steps / 4, " batch=", kBatch);
      r.dtype = dtype;
      r.kernel = "transformer forward";
      r.seconds = median(times);
      r.bytes = static_cast<double>(model->weight_bytes_per_token() +
                                    kBatch * (ctx_len + steps / 4) * model->kv_layout().bytes_per_token() / 2);
      r.flops = static_cast<double>(model->matmul_flops_per_token() * kBatch);
      r.tokens = static_cast<double>(kBatch);
      out.push_back(r);
    }
    // Prefill: one forward of `prefill` tokens into a fresh sequence, best of a few.
    {
      std::vector<double> times;
      const auto prompt = token_ids(prefill, vocab, 2);
      for (int rep = 0; rep < (ctx.quick ? 2 : 3); ++rep) {
        SeqState seq(pool);
        seq.reserve(prefill);
        const SeqInput in{prompt, 0, seq.pages(), false};
        const auto t0 = std::chrono::steady_clock::now();
        model->forward({&in, 1}, pool.view(), logits);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      Record r;
      r.op = "prefill";
      r.shape = cat(name, " prompt=", prefill);
      r.dtype = dtype;
      r.kernel = "transformer forward";
      r.seconds = *std::min_element(times.begin(), times.end());
      r.bytes = static_cast<double>(model->weight_bytes_per_token());
      r.flops = static_cast<double>(model->matmul_flops_per_token() * prefill);
      r.tokens = static_cast<double>(prefill);
      out.push_back(r);
    }
  }
}

const bool registered = register_group("model", model_group);

}  // namespace
}  // namespace bf::bench
