// Decoders: turn token strings back into text. Implemented, with Hugging Face's behaviour:
// ByteLevel, ByteFallback, Fuse, Strip, Replace (literal pattern), Metaspace, Sequence.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "text/json_fields.h"

namespace bf::text {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // One step of the chain: tokens in, tokens out; the text is the concatenation of the last
  // step's tokens. Every string stays valid UTF-8 (bad bytes become U+FFFD where Hugging Face
  // substitutes them).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // What this step does to one token that sits in the middle of a sequence, on raw bytes (no
  // U+FFFD substitution). `joined` says whether an earlier step joined the tokens into one text;
  // a step that trims token edges (Strip) then acts on the whole text, not on this token.
  virtual void raw_token(std::string& token, bool& joined) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const JsonField& config);

}  // namespace bf::text
