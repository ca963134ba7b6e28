// log.h: vlmd's structured log lines, one event per line:
//   ts=2026-11-23T19:35:12.123Z level=info event=request_done id=42 ms=118.5 status=ok
// Values are quoted ("...") when empty or when they hold spaces, '=', '"' or
// control characters, with \" \\ \n \t \xNN escapes; invalid UTF-8 is
// replaced and long values are cut at 256 bytes, so a line is always one
// parseable line. Keys that could carry request content (prompt, text,
// content, messages, image, image_bytes, authorization, api_key, token,
// password, secret) are written as key=[redacted] whatever the caller
// passes: logs never hold image bytes, prompt text or credentials.
// Not here: log rotation (journald/logrotate), metrics (/metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

namespace vlm {

enum class LogLevel : uint8_t { DEBUG = 0, INFO = 1, WARN = 2, ERROR = 3 };

const char *log_level_name(LogLevel l);   // "debug", "info", "warn", "error"
bool parse_log_level(const std::string &name, LogLevel &out);

struct LogField {
    std::string key, value;
    LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
    LogField(std::string_view k, const char *v) : key(k), value(v ? v : "") {}
    LogField(std::string_view k, const std::string &v) : key(k), value(v) {}
    LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
    LogField(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, long v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, long long v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, unsigned v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, unsigned long v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, unsigned long long v) : key(k), value(std::to_string(v)) {}
    LogField(std::string_view k, double v);   // 3 significant decimals
};

// One formatted line without the trailing newline; `unix_ms` is the event
// time (milliseconds since the epoch, UTC).
std::string format_log_line(int64_t unix_ms, LogLevel level, std::string_view event,
                            std::initializer_list<LogField> fields);

// Writes lines at or above a threshold to a FILE (stderr for systemd).
// Thread-safe: each line is written whole under a lock and flushed.
class Logger {
public:
    explicit Logger(FILE *out = stderr, LogLevel threshold = LogLevel::INFO)
        : out_(out), threshold_(threshold) {}
    bool enabled(LogLevel l) const { return l >= threshold_.load(std::memory_order_relaxed); }
    void set_threshold(LogLevel l) { threshold_.store(l, std::memory_order_relaxed); }
    void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
    void debug(std::string_view event, std::initializer_list<LogField> f = {}) { log(LogLevel::DEBUG, event, f); }
    void info(std::string_view event, std::initializer_list<LogField> f = {}) { log(LogLevel::INFO, event, f); }
    void warn(std::string_view event, std::initializer_list<LogField> f = {}) { log(LogLevel::WARN, event, f); }
    void error(std::string_view event, std::initializer_list<LogField> f = {}) { log(LogLevel::ERROR, event, f); }

private:
    FILE      *out_;
    std::atomic<LogLevel> threshold_;
    std::mutex mutex_;
};

}  // namespace vlm
