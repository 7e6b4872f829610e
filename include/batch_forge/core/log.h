// One logging sink for the whole library. Library code never prints; it calls log(). The default
// sink writes "batch_forge: level: message" lines to stderr; an embedding program replaces it.
#pragma once

#include <functional>
#include <string_view>

#include "batch_forge/core/error.h"

namespace bf {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

using LogSink = std::function<void(LogLevel, std::string_view message)>;

// Replaces the sink (nullptr restores the default). Thread-safe; returns the previous sink.
LogSink set_log_sink(LogSink sink);
// Messages below this level are dropped before they are formatted into the sink.
void set_log_level(LogLevel level);
LogLevel log_level();
std::string_view log_level_name(LogLevel level);

void log(LogLevel level, std::string_view message);

}  // namespace bf

// Formats only when the level is enabled: BF_LOG(kInfo, "mapped ", n, " bytes").
#define BF_LOG(level, ...)                                                                                    \
  do {                                                                                                        \
    if (::bf::LogLevel::level >= ::bf::log_level()) ::bf::log(::bf::LogLevel::level, ::bf::cat(__VA_ARGS__)); \
  } while (0)
