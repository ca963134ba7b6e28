// log.h: vlmd's structured log lines, one event per line on stderr:
//   ts=2026-11-23T19:35:12.123Z level=info event=request_done conn=17 slot=3 ms=118
// Values are quoted ("...") when empty or when they hold spaces, '=', '"' or
// control characters, with \" \\ \n \t \xNN escapes; invalid UTF-8 is
// replaced and long values are cut at 256 bytes, so a line is always one
// parseable line. Lines below the threshold (vlmd.conf log_level) are
// dropped before they are formatted.
//
// Request content never reaches a log line, by construction: what a field
// may hold is decided by its type, and no type accepts text made at run time
// from a request (prompts, titles, article text, image bytes, API keys,
// JWTs, the client's error messages):
//   LogWord       a string fixed at compile time (its constructor is
//                 consteval): event names, keys, reasons from a closed set.
//                 A std::string or a char pointer computed at run time does
//                 not convert, so {"reason", err} does not compile.
//   numbers       integers, floating point (3 decimals), bool.
//   LogHex        an integer written as 16 hex digits (ids, epochs).
//   LogErrno      an errno value, written as strerror's text.
//   OperatorText  text the operator gave vlmd: paths and values from the
//                 configuration and flags, startup errors about them. It is
//                 spelled out at each use; vlmd uses it at startup only.
// As a second fence, keys that name request content (prompt, text, content,
// messages, image, image_bytes, title, authorization, api_key, token,
// password, secret) are written as key=[redacted] whatever the value.
// Not here: log rotation (journald/logrotate), metrics (/metrics).
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace vlm {

enum class LogLevel : uint8_t { DEBUG = 0, INFO = 1, WARN = 2, ERROR = 3 };

const char *log_level_name(LogLevel l);   // "debug", "info", "warn", "error"
bool parse_log_level(const std::string &name, LogLevel &out);

class LogWord {
public:
    consteval LogWord(const char *s) : s_(s) {}
    const char *c_str() const { return s_; }

private:
    const char *s_;
};

struct LogHex {
    uint64_t value;
};

struct LogErrno {
    int value;
};

class OperatorText {
public:
    explicit OperatorText(std::string s) : text_(std::move(s)) {}
    const std::string &str() const { return text_; }

private:
    std::string text_;
};

// One key=value pair. The constructors are the whole list of what may be
// logged (see the top of this file); the templates take exactly their type,
// so a string literal never turns into a bool.
class LogField {
public:
    LogField(LogWord key, LogWord value) : key_(key), value_(value.c_str()) {}
    LogField(LogWord key, const OperatorText &value) : key_(key), value_(value.str()) {}
    LogField(LogWord key, LogHex value);
    LogField(LogWord key, LogErrno value);
    template <class T>
        requires std::same_as<T, bool>
    LogField(LogWord key, T value) : key_(key), value_(value ? "true" : "false") {}
    template <std::integral T>
        requires(!std::same_as<T, bool> && !std::same_as<T, char>)
    LogField(LogWord key, T value) : key_(key), value_(std::to_string(value)) {}
    template <std::floating_point T>
    LogField(LogWord key, T value) : LogField(key, double(value), 0) {}

    const char *key() const { return key_.c_str(); }
    const std::string &value() const { return value_; }

private:
    LogField(LogWord key, double value, int);
    LogWord     key_;
    std::string value_;
};

// One formatted line without the trailing newline; `unix_ms` is the event
// time (milliseconds since the epoch, UTC).
std::string format_log_line(int64_t unix_ms, LogLevel level, LogWord event,
                            std::initializer_list<LogField> fields);

// Writes lines at or above a threshold to a FILE (stderr for systemd).
// Thread-safe: each line is written whole under a lock and flushed.
class Logger {
public:
    explicit Logger(FILE *out = stderr, LogLevel threshold = LogLevel::INFO)
        : out_(out), threshold_(threshold) {}
    bool enabled(LogLevel l) const { return l >= threshold_.load(std::memory_order_relaxed); }
    void set_threshold(LogLevel l) { threshold_.store(l, std::memory_order_relaxed); }
    void log(LogLevel level, LogWord event, std::initializer_list<LogField> fields = {});
    void debug(LogWord event, std::initializer_list<LogField> f = {}) { log(LogLevel::DEBUG, event, f); }
    void info(LogWord event, std::initializer_list<LogField> f = {}) { log(LogLevel::INFO, event, f); }
    void warn(LogWord event, std::initializer_list<LogField> f = {}) { log(LogLevel::WARN, event, f); }
    void error(LogWord event, std::initializer_list<LogField> f = {}) { log(LogLevel::ERROR, event, f); }

private:
    FILE                 *out_;
    std::atomic<LogLevel> threshold_;
    std::mutex            mutex_;
};

}  // namespace vlm
