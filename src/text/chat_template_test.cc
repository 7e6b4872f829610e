// Chat templates: the ChatML forms real models ship are recognized and rendered as Jinja renders
// them (expected strings written out by hand: jinja2 is not in the venv), anything else is refused.
#include <gtest/gtest.h>

#include <filesystem>

#include "batch_forge/core/error.h"
#include "batch_forge/io/safetensors.h"
#include "batch_forge/text/chat_template.h"
#include "support/paths.h"

namespace bf {
namespace {

// tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf, verbatim (its string literals hold
// real newlines, not "\n" escapes).
constexpr std::string_view kSmolLm2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' "
    "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% "
    "endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

constexpr std::string_view kSmolLm2System = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// The same form as tokenizer_config.json writes it (escaped newlines) and laid out over lines with
// whitespace control, attribute syntax and double quotes, as Qwen2 ships it.
constexpr std::string_view kQwenStyleTemplate = R"({%- for message in messages %}
    {%- if loop.first and messages[0].role != "system" %}
        {{- "<|im_start|>system\nYou are Qwen, a helpful assistant.<|im_end|>\n" }}
    {%- endif %}
    {{- "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>" + "\n" }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- "<|im_start|>assistant\n" }}
{%- endif %}
)";

// Plain ChatML as in the Hugging Face chat-template documentation.
constexpr std::string_view kPlainChatMl =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";

// Block tags on lines of their own: trim_blocks, lstrip_blocks and '-' remove the layout.
constexpr std::string_view kBlockLayoutTemplate = R"({% for message in messages %}
    {% if loop.first and messages[0]['role'] != 'system' %}
        {{- '<|im_start|>system\nBe brief.<|im_end|>\n' -}}
    {% endif %}
    {{- '<|im_start|>' + message['role'] + '\n' }}{{ message['content'] }}{{ '<|im_end|>\n' -}}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' -}}
{% endif %}
)";

// The default system message tested before the loop.
constexpr std::string_view kSystemBeforeLoopTemplate =
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const std::vector<ChatMessage> kUserAssistantUser = {
    {"user", "Hi!"}, {"assistant", "Hello, how can I help?"}, {"user", "What is 2+2?"}};
const std::vector<ChatMessage> kSystemUserAssistantUser = {
    {"system", "You answer in French."}, {"user", "Hi!"}, {"assistant", "Bonjour !"}, {"user", "2+2 ?"}};

TEST(ChatTemplate, SmolLm2TemplateInsertsItsDefaultSystemMessage) {
  const ChatTemplate t = ChatTemplate::from_source(kSmolLm2Template);
  ASSERT_TRUE(t.default_system_message());
  EXPECT_EQ(*t.default_system_message(), kSmolLm2System);
  EXPECT_EQ(t.render(kUserAssistantUser),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\nHello, how can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.render(kSystemUserAssistantUser, /*add_generation_prompt=*/false),
            "<|im_start|>system\nYou answer in French.<|im_end|>\n"
            "<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\nBonjour !<|im_end|>\n"
            "<|im_start|>user\n2+2 ?<|im_end|>\n");
  EXPECT_EQ(t.stop_strings(), std::vector<std::string>{"<|im_end|>"});
}

TEST(ChatTemplate, SpellingsOfTheSameFormRenderAlike) {
  const ChatTemplate qwen = ChatTemplate::from_source(kQwenStyleTemplate);
  ASSERT_TRUE(qwen.default_system_message());
  EXPECT_EQ(*qwen.default_system_message(), "You are Qwen, a helpful assistant.");
  EXPECT_EQ(qwen.render(std::vector<ChatMessage>{{"user", "Hi"}}),
            "<|im_start|>system\nYou are Qwen, a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");

  const ChatTemplate layout = ChatTemplate::from_source(kBlockLayoutTemplate);
  ASSERT_TRUE(layout.default_system_message());
  EXPECT_EQ(*layout.default_system_message(), "Be brief.");
  EXPECT_EQ(layout.render(kSystemUserAssistantUser), ChatTemplate::chatml().render(kSystemUserAssistantUser));
  EXPECT_EQ(layout.render(kUserAssistantUser),
            "<|im_start|>system\nBe brief.<|im_end|>\n" + ChatTemplate::chatml().render(kUserAssistantUser));

  const ChatTemplate before = ChatTemplate::from_source(kSystemBeforeLoopTemplate);
  EXPECT_EQ(before.default_system_message(), std::optional<std::string>("Be brief."));
  EXPECT_EQ(before.render(kUserAssistantUser, false), layout.render(kUserAssistantUser, false));
}

TEST(ChatTemplate, PlainChatMl) {
  const ChatTemplate t = ChatTemplate::from_source(kPlainChatMl);
  EXPECT_FALSE(t.default_system_message());
  const std::string want =
      "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello, how can I help?<|im_end|>\n"
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(t.render(kUserAssistantUser), want);
  EXPECT_EQ(ChatTemplate::chatml().render(kUserAssistantUser), want);
  EXPECT_EQ(ChatTemplate::chatml().render(kUserAssistantUser, false), want.substr(0, want.size() - 22));
  EXPECT_EQ(ChatTemplate::chatml().render({}), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, ModelFileTemplate) {
  const std::string model = testing::source_dir() + "/models/smollm2-135m-instruct.safetensors";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no " << model;
  const SafetensorsFile file = SafetensorsFile::open(model);
  const auto it = file.metadata().find("batch_forge.chat_template");
  ASSERT_NE(it, file.metadata().end()) << model << " has no batch_forge.chat_template";
  const ChatTemplate t = ChatTemplate::from_source(it->second);
  ASSERT_TRUE(t.default_system_message());
  EXPECT_EQ(*t.default_system_message(), kSmolLm2System);
  EXPECT_EQ(t.render(kUserAssistantUser), ChatTemplate::from_source(kSmolLm2Template).render(kUserAssistantUser));
}

void expect_unsupported(std::string_view source, std::string_view detail) {
  try {
    ChatTemplate::from_source(source);
    ADD_FAILURE() << "accepted: " << source;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_EQ(e.component(), "chat");
    const std::string what = e.what();
    EXPECT_NE(what.find("ChatML"), std::string::npos) << what;  // names the supported form
    EXPECT_NE(what.find(detail), std::string::npos) << what << "\n  lacks: " << detail;
  }
}

TEST(ChatTemplate, OtherFormsAreRefused) {
  // Llama 3.
  expect_unsupported(
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
      "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor "
      "%}",
      "set loop_messages");
  // Zephyr.
  expect_unsupported(
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
      "eos_token }}\n{% endif %}\n{% endfor %}",
      "if message [ 'role' ] == 'user'");
  // ChatML with a filter on the content.
  expect_unsupported(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] | trim + "
      "'<|im_end|>\n'}}{% endfor %}",
      "message['content'] | trim");
  // ChatML with text between the turns.
  expect_unsupported(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
      "'<|im_end|>\n\n'}}{% endfor %}",
      "<|im_end|>\\n\\n");
  // Something after the generation prompt.
  expect_unsupported(std::string(kPlainChatMl) + "{{ bos_token }}", "bos_token");
}

TEST(ChatTemplate, MalformedSource) {
  for (const std::string_view source : {"{% for message in messages %}{{ 'abc }}", "{% for message in messages "}) {
    try {
      ChatTemplate::from_source(source);
      ADD_FAILURE() << "accepted: " << source;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidFile) << e.what();
      EXPECT_EQ(e.component(), "chat");
    }
  }
}

}  // namespace
}  // namespace bf
