#include "batch_forge/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace bf {
namespace {

std::mutex g_sink_mutex;
LogSink g_sink;  // empty: the default stderr sink
std::atomic<LogLevel> g_level{LogLevel::kInfo};

void default_sink(LogLevel level, std::string_view message) {
  std::fprintf(stderr, "batch_forge: %s: %.*s\n", log_level_name(level).data(), static_cast<int>(message.size()),
               message.data());
}

}  // namespace

LogSink set_log_sink(LogSink sink) {
  std::lock_guard lock(g_sink_mutex);
  LogSink previous = std::move(g_sink);
  g_sink = std::move(sink);
  return previous;
}

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

void log(LogLevel level, std::string_view message) {
  if (level < log_level() || level == LogLevel::kOff) return;
  std::lock_guard lock(g_sink_mutex);  // sinks need not be thread-safe themselves
  if (g_sink)
    g_sink(level, message);
  else
    default_sink(level, message);
}

}  // namespace bf
