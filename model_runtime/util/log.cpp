// log.cpp: formatting and writing of structured log lines (see log.h).
#include "util/log.h"
#include "util/utf8.h"

#include <chrono>
#include <cstring>
#include <ctime>

namespace vlm {

namespace {

constexpr size_t kMaxValueBytes = 256;

bool is_redacted_key(std::string_view k) {
    static const char *const keys[] = {"prompt", "text", "content", "messages", "image", "image_bytes", "title",
                                       "authorization", "api_key", "token", "password", "secret"};
    for (const char *r : keys)
        if (k == r) return true;
    return false;
}

// Keys are identifiers; anything else becomes '_' so a key cannot forge a field.
std::string clean_key(std::string_view k) {
    std::string out;
    for (char c : k)
        out += ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.')
                   ? c
                   : '_';
    return out.empty() ? "_" : out;
}

std::string format_value(const std::string &raw) {
    std::string v = utf8_lossy(raw);
    bool cut = false;
    if (v.size() > kMaxValueBytes) {
        size_t n = kMaxValueBytes;
        while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xC0) == 0x80) n--;   // keep UTF-8 whole
        v.resize(n);
        cut = true;
    }
    bool quote = v.empty() || cut;
    for (char c : v)
        if (c == ' ' || c == '=' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
            quote = true;
    if (!quote) return v;
    std::string out = "\"";
    for (char c : v) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (u < 0x20 || u == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else out += c;
    }
    if (cut) out += "...";
    out += '"';
    return out;
}

}  // namespace

LogField::LogField(LogWord k, double v, int) : key_(k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    value_ = buf;
}

LogField::LogField(LogWord k, LogHex v) : key_(k) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v.value));
    value_ = buf;
}

LogField::LogField(LogWord k, LogErrno v) : key_(k) {
    char buf[256];
    // GNU strerror_r: the message, in buf or static storage.
    value_ = strerror_r(v.value, buf, sizeof buf);
}

const char *log_level_name(LogLevel l) {
    switch (l) {
    case LogLevel::DEBUG: return "debug";
    case LogLevel::INFO: return "info";
    case LogLevel::WARN: return "warn";
    case LogLevel::ERROR: return "error";
    }
    return "?";
}

bool parse_log_level(const std::string &name, LogLevel &out) {
    for (LogLevel l : {LogLevel::DEBUG, LogLevel::INFO, LogLevel::WARN, LogLevel::ERROR})
        if (name == log_level_name(l)) {
            out = l;
            return true;
        }
    if (name == "warning") {
        out = LogLevel::WARN;
        return true;
    }
    return false;
}

std::string format_log_line(int64_t unix_ms, LogLevel level, LogWord event,
                            std::initializer_list<LogField> fields) {
    time_t secs = time_t(unix_ms / 1000);
    int ms = int(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    tm t{};
    gmtime_r(&secs, &t);
    char ts[80];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec, ms);
    std::string line = std::string("ts=") + ts + " level=" + log_level_name(level) +
                       " event=" + format_value(event.c_str());
    for (const LogField &f : fields) {
        line += ' ';
        line += clean_key(f.key());
        line += '=';
        line += is_redacted_key(f.key()) ? "[redacted]" : format_value(f.value());
    }
    return line;
}

void Logger::log(LogLevel level, LogWord event, std::initializer_list<LogField> fields) {
    if (!enabled(level) || !out_) return;
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    std::string line = format_log_line(now, level, event, fields);
    line += '\n';
    std::lock_guard<std::mutex> lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
}

}  // namespace vlm
