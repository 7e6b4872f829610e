// Chat templates: turn a conversation into the prompt text a chat model was trained on.
//
// Models ship their template as Jinja source (tokenizer_config.json "chat_template", GGUF
// tokenizer.chat_template, or our model file's metadata key `batch_forge.chat_template`). There is
// no Jinja interpreter here: from_source() parses the source and recognizes the ChatML form
//
//   <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
//
// in the spellings templates use for it, including those that insert a default system message
// when the conversation does not start with one (as SmolLM2 and Qwen do). Anything else is
// refused with Error(kUnsupported, "chat") rather than rendered wrongly.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bf {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

class ChatTemplate {
 public:
  // Throws Error(kUnsupported, "chat") naming the supported forms when the source is not one of
  // them, Error(kInvalidFile, "chat") when it is not well-formed Jinja (an unclosed tag or string).
  static ChatTemplate from_source(std::string_view jinja_source);
  // Plain ChatML: no default system message, with the generation prompt.
  static ChatTemplate chatml();

  // The prompt for `messages`; with add_generation_prompt it ends in "<|im_start|>assistant\n" so
  // the model writes the next assistant turn. Renders as Jinja renders the recognized template
  // (transformers' settings: trim_blocks, lstrip_blocks), except that an empty conversation gives
  // just the generation prompt.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt = true) const;

  // Text that ends the assistant's turn; generation stops there.
  std::vector<std::string> stop_strings() const;

  // The system message inserted when the first message is not "system", if the template has one.
  const std::optional<std::string>& default_system_message() const { return default_system_; }

 private:
  ChatTemplate() = default;

  std::optional<std::string> default_system_;
  bool has_generation_prompt_ = true;
};

}  // namespace bf
