// tokenizer_regex.cpp: PCRE2 (8-bit, JIT when available) behind TokRegex. The
// option set mirrors what `tokenizers` gets from Oniguruma's Ruby syntax; the
// iteration skips an empty match that sits where the previous match ended.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer_regex.h"

#include "text/tokenizer_utf8.h"

#include <pcre2.h>

namespace vlm {

namespace {
// A generous backtracking budget: enough for any sane split pattern on any
// input, small enough that a pathological pattern cannot hang the server.
constexpr uint32_t kMatchLimit = 10'000'000;

// Oniguruma's Unicode `\s` is exactly White_Space; PCRE2's also takes U+180E
// (and other engines differ elsewhere), so `\s` / `\S` are spelled out.
constexpr const char *kWhiteSpaceItems =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Rewrites `\s` and `\S` (inside and outside character classes; `\S` inside
// a class is left alone, no tokenizer uses it). Other syntax is copied.
std::string spell_out_white_space(const std::string &pattern) {
    std::string out;
    out.reserve(pattern.size() + 64);
    int class_depth = 0;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[i + 1];
            ++i;
            if (e == 's') {
                if (class_depth > 0) out += kWhiteSpaceItems;
                else out.append("[").append(kWhiteSpaceItems).append("]");
            } else if (e == 'S' && class_depth == 0) {
                out.append("[^").append(kWhiteSpaceItems).append("]");
            } else {
                out += '\\';
                out += e;
            }
            continue;
        }
        if (c == '[') {
            // A POSIX class like [:alpha:] inside a class does not nest.
            if (class_depth > 0 && i + 1 < pattern.size() && pattern[i + 1] == ':') {
                const size_t close = pattern.find(":]", i + 2);
                if (close != std::string::npos) {
                    out.append(pattern, i, close + 2 - i);
                    i = close + 1;
                    continue;
                }
            }
            ++class_depth;
            out += c;
            // A ']' right after '[' or '[^' is a literal.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
            continue;
        }
        if (c == ']' && class_depth > 0) --class_depth;
        out += c;
    }
    return out;
}
}  // namespace

struct TokRegex::Impl {
    pcre2_code         *code = nullptr;
    pcre2_match_context *mctx = nullptr;
    ~Impl() {
        if (mctx) pcre2_match_context_free(mctx);
        if (code) pcre2_code_free(code);
    }
};

TokMatchData::TokMatchData() : md_(pcre2_match_data_create(1, nullptr)) {}
TokMatchData::~TokMatchData() { pcre2_match_data_free(static_cast<pcre2_match_data *>(md_)); }

TokRegex::~TokRegex() = default;

std::unique_ptr<TokRegex> TokRegex::compile(const std::string &pattern, bool literal,
                                            std::string &err) {
    uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    options |= literal ? PCRE2_LITERAL : PCRE2_MULTILINE;
    const std::string source = literal ? pattern : spell_out_white_space(pattern);
    int        errcode = 0;
    PCRE2_SIZE erroffset = 0;
    pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()),
                                     source.size(), options, &errcode, &erroffset, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        err = "regex error at offset " + std::to_string(erroffset) + ": " +
              reinterpret_cast<const char *>(msg);
        return nullptr;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);   // falls back to the interpreter
    std::unique_ptr<TokRegex> re(new TokRegex());
    re->impl_ = std::make_unique<Impl>();
    re->impl_->code = code;
    re->impl_->mctx = pcre2_match_context_create(nullptr);
    if (!re->impl_->mctx) {
        err = "out of memory creating a regex match context";
        return nullptr;
    }
    pcre2_set_match_limit(re->impl_->mctx, kMatchLimit);
    return re;
}

bool TokRegex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>> &matches,
                        TokMatchData &scratch) const {
    auto *md = static_cast<pcre2_match_data *>(scratch.get());
    if (!md) return false;
    const auto *s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    const size_t n = subject.size();
    size_t pos = 0;
    bool   have_last = false;
    size_t last_end = 0;
    bool   ok = true;
    while (pos <= n) {
        const int rc = pcre2_match(impl_->code, s, n, pos, 0, md, impl_->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) { ok = false; break; }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const size_t start = ov[0], end = ov[1];
        if (start == end && have_last && last_end == end) {
            // Step over one character (or one stray byte) and search again.
            pos += pos < n ? utf8::scan(subject, pos).length : 1;
            continue;
        }
        matches.emplace_back(start, end);
        pos = end;
        have_last = true;
        last_end = end;
    }
    return ok;
}

bool TokRegex::full_match(std::string_view subject) const {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
    if (!md) return false;
    const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                               subject.size(), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md,
                               impl_->mctx);
    pcre2_match_data_free(md);
    return rc >= 0;
}

}  // namespace vlm
