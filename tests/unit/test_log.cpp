// test_log.cpp: vlmd's log lines stay one parseable line whatever the values
// hold, never carry request content, and respect the level threshold.
#include "util/log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include <check.h>   // after the standard headers: it defines a fail() macro

using namespace vlm;

START_TEST(line_format)
{
    // 2026-11-23T19:35:12.123Z
    const int64_t t = 1795462512123;
    std::string line = format_log_line(t, LogLevel::INFO, "request_done",
                                       {{"id", 42}, {"task", "alt_text"}, {"ms", 118.5}, {"cached", false},
                                        {"bytes", size_t(1024)}});
    ck_assert_str_eq(line.c_str(), "ts=2026-11-23T19:35:12.123Z level=info event=request_done id=42 task=alt_text "
                                   "ms=118.500 cached=false bytes=1024");
}
END_TEST

START_TEST(values_quoted_and_escaped)
{
    struct {
        const char *value, *want;
    } cases[] = {
        {"plain", "k=plain"},
        {"", "k=\"\""},
        {"two words", "k=\"two words\""},
        {"a=b", "k=\"a=b\""},
        {"say \"hi\"", "k=\"say \\\"hi\\\"\""},
        {"line1\nline2 ts=forged level=error", "k=\"line1\\nline2 ts=forged level=error\""},
        {"tab\there", "k=\"tab\\there\""},
        {"back\\slash", "k=\"back\\\\slash\""},
        {"bell\x07", "k=\"bell\\x07\""},
        {"中文", "k=中文"},
        {"bad\xff", "k=bad\xEF\xBF\xBD"},
    };
    for (const auto &c : cases) {
        std::string line = format_log_line(0, LogLevel::WARN, "e", {{"k", OperatorText(c.value)}});
        std::string got = line.substr(line.find(" k=") + 1);
        ck_assert_msg(got == c.want, "value \"%s\": got %s, want %s", c.value, got.c_str(), c.want);
        ck_assert(line.find('\n') == std::string::npos);
    }
    // Long values are cut (UTF-8 intact) and marked.
    std::string long_value(1000, 'x');
    std::string line = format_log_line(0, LogLevel::INFO, "e", {{"k", OperatorText(long_value)}});
    ck_assert_msg(line.size() < 330, "line of %zu bytes", line.size());
    ck_assert(line.find("...\"") != std::string::npos);
    std::string zh;
    for (int i = 0; i < 200; i++) zh += "字";
    line = format_log_line(0, LogLevel::INFO, "e", {{"k", OperatorText(zh)}});
    ck_assert(line.find("\xEF\xBF\xBD") == std::string::npos);
    // Keys cannot forge fields either.
    line = format_log_line(0, LogLevel::INFO, "e", {{"a b=c", 1}});
    ck_assert_msg(line.find(" a_b_c=1") != std::string::npos, "%s", line.c_str());
}
END_TEST

// What a field may hold is its type's decision (log.h); the compile-time
// half is tests/unit/compile_fail/log_fields.cpp.
static_assert(!std::is_constructible_v<LogField, LogWord, std::string>);
static_assert(!std::is_constructible_v<LogField, LogWord, std::string_view>);
static_assert(!std::is_constructible_v<LogField, LogWord, char>);
static_assert(!std::is_convertible_v<std::string, OperatorText>);   // spelled out, never implicit

START_TEST(typed_fields)
{
    std::string line = format_log_line(0, LogLevel::INFO, "e",
                                       {{"epoch", LogHex{0xabc}}, {"error", LogErrno{ENOENT}},
                                        {"path", OperatorText("/etc/vlm prompts")}, {"n", uint8_t(7)}});
    ck_assert_msg(line.find(" epoch=0000000000000abc error=\"No such file or directory\" "
                            "path=\"/etc/vlm prompts\" n=7") != std::string::npos,
                  "%s", line.c_str());
}
END_TEST

START_TEST(content_redacted)
{
    std::string line = format_log_line(0, LogLevel::ERROR, "bad_request",
                                       {{"prompt", "describe my secret plans"}, {"image", "\x89PNG..."},
                                        {"authorization", "Bearer abc"}, {"api_key", "k-123"},
                                        {"title", OperatorText("My holiday")}, {"reason", "x"}});
    ck_assert_msg(line.find("secret plans") == std::string::npos && line.find("PNG") == std::string::npos &&
                      line.find("Bearer") == std::string::npos && line.find("k-123") == std::string::npos &&
                      line.find("holiday") == std::string::npos,
                  "%s", line.c_str());
    ck_assert(line.find("prompt=[redacted] image=[redacted] authorization=[redacted] api_key=[redacted] "
                        "title=[redacted] reason=x") != std::string::npos);
}
END_TEST

START_TEST(threshold)
{
    char *buf = nullptr;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    {
        Logger log(f, LogLevel::WARN);
        log.debug("d");
        log.info("i");
        log.warn("w", {{"n", 1}});
        log.error("e");
        ck_assert(!log.enabled(LogLevel::INFO));
        log.set_threshold(LogLevel::DEBUG);
        log.debug("d2");
    }
    std::fclose(f);
    std::string out(buf, size);
    std::free(buf);
    ck_assert_msg(out.find("event=d ") == std::string::npos && out.find("event=i") == std::string::npos, "%s",
                  out.c_str());
    ck_assert(out.find("level=warn event=w n=1\n") != std::string::npos);
    ck_assert(out.find("level=error event=e\n") != std::string::npos);
    ck_assert(out.find("level=debug event=d2\n") != std::string::npos);
    LogLevel l;
    ck_assert(parse_log_level("warn", l) && l == LogLevel::WARN);
    ck_assert(!parse_log_level("loud", l));
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "log", {
        {"log", 0, {
            line_format,
            values_quoted_and_escaped,
            typed_fields,
            content_redacted,
            threshold,
        }},
    });
}
