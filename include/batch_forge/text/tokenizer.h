// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json, encoding and decoding exactly
// as the Hugging Face `tokenizers` library does (docs/tokenizer.md lists the supported
// components). A model file carries the JSON in its metadata key `batch_forge.tokenizer`.
//
//   Tokenizer tok = Tokenizer::from_json(json_text, "model.safetensors");
//   std::vector<int32_t> ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n");
//   std::string text = tok.decode(ids);
//
// encode() adds no BOS/EOS: the post_processor of tokenizer.json is not applied, the caller adds
// what its model wants. A Tokenizer is immutable after loading and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bf {

namespace text {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Parses tokenizer.json text. Throws Error(kInvalidFile, "tokenizer") naming `source` and the
  // field for malformed input, and Error(kUnsupported) naming the component for a model,
  // normalizer, pre-tokenizer or decoder type (or option) it does not implement.
  static Tokenizer from_json(std::string_view json_text, std::string_view source = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Max id + 1 over the vocabulary and the added tokens.
  int32_t vocab_size() const;

  // Token ids of `text` (valid UTF-8, else Error(kInvalidArgument)). Added tokens in the text are
  // matched first; with allow_special false the special ones among them are encoded as plain
  // text (Hugging Face's encode_special_tokens).
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;

  // Text of `ids`; bytes that do not form UTF-8 come out as U+FFFD as in Hugging Face. An id
  // outside [0, vocab_size()) or without a token is an Error(kInvalidArgument) (Hugging Face
  // silently drops it).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The bytes one token stands for in the middle of a text (byte-level characters mapped back to
  // bytes, <0xXX> to its byte, "▁" to a space); may be part of a UTF-8 character.
  std::string token_bytes(int32_t id) const;

  // Whether `id` is an added token marked special (false for any id outside the vocabulary).
  bool is_special(int32_t id) const;

  // The id of a token string (added tokens first, then the vocabulary), e.g. "<|im_end|>".
  std::optional<int32_t> find(std::string_view token) const;

 private:
  explicit Tokenizer(std::unique_ptr<const text::TokenizerImpl> impl);

  std::unique_ptr<const text::TokenizerImpl> impl_;
};

// Incremental detokenization for streaming. push() returns the text the new token completes, never
// part of a UTF-8 character: while the text ends in an unfinished character it returns "" and
// holds the bytes. The chunks equal Hugging Face's DecodeStream, and all pushes plus flush() give
// decode() of all ids. The Tokenizer must outlive the decoder.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  std::string push(int32_t id);
  // The text still held back (an unfinished character becomes U+FFFD); starts a new stream.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  // ids_ holds the ids of the last chunk returned, then the ids not returned yet; prefix_ is the
  // decoded text of the first prefix_index_ of them. Decoding that short window again on each push
  // keeps decoders that look at neighbouring tokens (Metaspace, ByteLevel) exact.
  std::vector<int32_t> ids_;
  std::string prefix_;
  size_t prefix_index_ = 0;
};

}  // namespace bf
