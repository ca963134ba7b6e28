// lexer.cpp: jinja2.lexer.Lexer.tokeniter, hand-written. The comments name the
// regular expression each piece stands for.
#include "text/jinja/lexer.h"

#include "text/jinja/value.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace vlm::jinja {

namespace {

struct LexError {
    std::string msg;
    int line;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Length of the Python whitespace (\s) code point at s[i], or 0.
size_t space_at(std::string_view s, size_t i) {
    if (i >= s.size()) return 0;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    size_t j = i;
    const uint32_t cp = utf8_next(s, j);
    return py_isspace(cp) ? j - i : 0;
}

size_t skip_spaces(std::string_view s, size_t i) {
    while (size_t n = space_at(s, i)) i += n;
    return i;
}

// str.rstrip(): the length of s without its trailing Python whitespace.
size_t rstrip_len(std::string_view s) {
    size_t end = s.size();
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        if (space_at(s, start) != end - start) break;
        end = start;
    }
    return end;
}

// newline_re.split(source)[::2] joined by "\n", minus one trailing newline
// (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view src) {
    std::string out;
    out.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
        if (src[i] == '\r') {
            out += '\n';
            if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
        } else {
            out += src[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// value_str[1:-1].encode("ascii", "backslashreplace").decode("unicode-escape"):
// non-ASCII code points pass through unchanged (their \x/\u/\U spelling
// decodes back), except right after a backslash, where the backslash escapes
// the first character of that spelling.
std::string decode_string(std::string_view raw, int line) {
    // backslashreplace
    std::string ascii;
    ascii.reserve(raw.size());
    for (size_t i = 0; i < raw.size();) {
        const unsigned char c = static_cast<unsigned char>(raw[i]);
        if (c < 0x80) {
            ascii += static_cast<char>(c);
            ++i;
            continue;
        }
        const uint32_t cp = utf8_next(raw, i);
        static const char hex[] = "0123456789abcdef";
        const int digits = cp <= 0xFF ? 2 : cp <= 0xFFFF ? 4 : 8;
        ascii += cp <= 0xFF ? "\\x" : cp <= 0xFFFF ? "\\u" : "\\U";
        for (int k = digits - 1; k >= 0; --k) ascii += hex[(cp >> (4 * k)) & 15];
    }
    // unicode-escape
    std::string out;
    out.reserve(ascii.size());
    for (size_t i = 0; i < ascii.size();) {
        const char c = ascii[i];
        if (c != '\\') {
            out += c;
            ++i;
            continue;
        }
        if (i + 1 >= ascii.size()) throw LexError{"\\ at end of string", line};
        const char e = ascii[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;   // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < n; ++k) {
                const int h = i + k < ascii.size() ? hex_val(ascii[i + k]) : -1;
                if (h < 0)
                    throw LexError{std::string("truncated \\") + e + " escape in a string literal", line};
                cp = cp * 16 + static_cast<uint32_t>(h);
            }
            i += static_cast<size_t>(n);
            if (cp > 0x10FFFF) throw LexError{"illegal Unicode character in a string literal", line};
            if (cp >= 0xD800 && cp <= 0xDFFF)
                throw LexError{"unsupported: a lone surrogate escape in a string literal", line};
            utf8_append(out, cp);
            break;
        }
        case 'N': throw LexError{"unsupported: \\N{...} escape in a string literal", line};
        default:
            if (e >= '0' && e <= '7') {   // up to three octal digits
                uint32_t cp = static_cast<uint32_t>(e - '0');
                for (int k = 0; k < 2 && i < ascii.size() && ascii[i] >= '0' && ascii[i] <= '7'; ++k)
                    cp = cp * 8 + static_cast<uint32_t>(ascii[i++] - '0');
                utf8_append(out, cp);
            } else {   // an unknown escape keeps its backslash
                out += '\\';
                out += e;
            }
        }
    }
    return out;
}

class Lexer {
public:
    Lexer(std::string src, std::vector<Token> &out) : s_(std::move(src)), out_(out) {}

    void run() {
        while (pos_ < s_.size()) {
            const size_t tag = find_tag(pos_);
            if (tag == std::string::npos) {
                emit_data(pos_, s_.size(), s_.substr(pos_));
                pos_ = s_.size();
                break;
            }
            root_tag(tag);
        }
        out_.push_back({Tok::Eof, line_, {}});
    }

private:
    std::string s_;
    std::vector<Token> &out_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;   // the previous match ended with "\n"

    void count_lines(size_t from, size_t to) {
        for (size_t i = from; i < to; ++i)
            if (s_[i] == '\n') ++line_;
    }

    size_t find_tag(size_t from) const {
        for (size_t i = s_.find('{', from); i != std::string::npos; i = s_.find('{', i + 1))
            if (i + 1 < s_.size() && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
        return std::string::npos;
    }

    void emit_data(size_t from, size_t to, std::string text) {
        const int line = line_;
        count_lines(from, to);
        if (!text.empty()) out_.push_back({Tok::Data, line, std::move(text)});
    }

    // OptionalLStrip: the text before a tag, after `-` or lstrip_blocks.
    std::string strip_before(size_t from, size_t to, char sign, bool lstrip) const {
        std::string_view text(s_.data() + from, to - from);
        if (sign == '-') return std::string(text.substr(0, rstrip_len(text)));
        if (sign != '+' && lstrip) {
            const size_t nl = text.rfind('\n');
            const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
            if ((l_pos > 0 || line_starting_) && l_pos < text.size() &&
                skip_spaces(text, l_pos) == text.size())
                return std::string(text.substr(0, l_pos));
        }
        return std::string(text);
    }

    // {%(-|+|)\s*raw\s*(?:-%}\s*|%}) at i: the end of the match, or npos.
    size_t match_raw_begin(size_t i) const {
        size_t p = i + 2;
        if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) ++p;
        p = skip_spaces(s_, p);
        if (s_.compare(p, 3, "raw") != 0) return std::string::npos;
        p = skip_spaces(s_, p + 3);
        if (s_.compare(p, 3, "-%}") == 0) return skip_spaces(s_, p + 3);
        if (s_.compare(p, 2, "%}") == 0) return p + 2;
        return std::string::npos;
    }

    void root_tag(size_t tag) {
        const char kind = s_[tag + 1];   // '{', '%' or '#'
        const size_t raw_end = kind == '%' ? match_raw_begin(tag) : std::string::npos;
        const char sign = tag + 2 < s_.size() ? s_[tag + 2] : '\0';
        const char ws = sign == '-' || sign == '+' ? sign : '\0';
        emit_data(pos_, tag, strip_before(pos_, tag, ws, kind != '{'));
        if (raw_end != std::string::npos) {
            count_lines(tag, raw_end);
            line_starting_ = s_[raw_end - 1] == '\n';
            pos_ = raw_end;
            raw_body();
            return;
        }
        pos_ = tag + 2 + (ws ? 1 : 0);
        if (kind == '#') comment();
        else tag_body(kind == '{');
    }

    // (.*?)((?:\+#}|\-#}\s*|#}\n?)), else (.) fails "Missing end of comment
    // tag" -- which needs a character: an unclosed comment at the very end of
    // the template is silently dropped, as in jinja2.
    void comment() {
        if (pos_ >= s_.size()) return;
        const int start_line = line_;
        for (size_t p = pos_; p + 1 < s_.size(); ++p) {
            size_t end = std::string::npos;
            if (s_[p] == '+' && s_.compare(p + 1, 2, "#}") == 0) end = p + 3;
            else if (s_[p] == '-' && s_.compare(p + 1, 2, "#}") == 0) end = skip_spaces(s_, p + 3);
            else if (s_.compare(p, 2, "#}") == 0) end = p + 2 + (p + 2 < s_.size() && s_[p + 2] == '\n');
            if (end == std::string::npos) continue;
            count_lines(pos_, end);
            line_starting_ = s_[end - 1] == '\n';
            pos_ = end;
            return;
        }
        throw LexError{"Missing end of comment tag", start_line};
    }

    // (.*?)((?:{%(-|+|))\s*endraw\s*(?:\+%}|\-%}\s*|%}\n?)); like comments,
    // an unclosed raw block with nothing after it is silently empty.
    void raw_body() {
        if (pos_ >= s_.size()) return;
        const int start_line = line_;
        for (size_t p = s_.find("{%", pos_); p != std::string::npos; p = s_.find("{%", p + 1)) {
            size_t q = p + 2;
            char sign = '\0';
            if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) sign = s_[q++];
            q = skip_spaces(s_, q);
            if (s_.compare(q, 6, "endraw") != 0) continue;
            q = skip_spaces(s_, q + 6);
            size_t end;
            if (s_.compare(q, 3, "+%}") == 0) end = q + 3;
            else if (s_.compare(q, 3, "-%}") == 0) end = skip_spaces(s_, q + 3);
            else if (s_.compare(q, 2, "%}") == 0) end = q + 2 + (q + 2 < s_.size() && s_[q + 2] == '\n');
            else continue;
            emit_data(pos_, p, strip_before(pos_, p, sign, true));
            count_lines(p, end);
            line_starting_ = s_[end - 1] == '\n';
            pos_ = end;
            return;
        }
        throw LexError{"Missing end of raw directive", start_line};
    }

    // The tag end at p, if any: sets `end` past what the rule consumes.
    bool match_end(size_t p, bool variable, size_t &end) const {
        if (variable) {
            if (s_.compare(p, 3, "-}}") == 0) { end = skip_spaces(s_, p + 3); return true; }
            if (s_.compare(p, 2, "}}") == 0) { end = p + 2; return true; }
            return false;
        }
        if (s_.compare(p, 3, "+%}") == 0) { end = p + 3; return true; }
        if (s_.compare(p, 3, "-%}") == 0) { end = skip_spaces(s_, p + 3); return true; }
        if (s_.compare(p, 2, "%}") == 0) {   // trim_blocks
            end = p + 2 + (p + 2 < s_.size() && s_[p + 2] == '\n');
            return true;
        }
        return false;
    }

    void tag_body(bool variable) {
        out_.push_back({variable ? Tok::VarBegin : Tok::BlockBegin, line_, {}});
        std::string balance;   // closing brackets expected, innermost last
        while (true) {
            if (pos_ >= s_.size()) return;   // the parser reports the missing end
            size_t end;
            if (balance.empty() && match_end(pos_, variable, end)) {
                out_.push_back({variable ? Tok::VarEnd : Tok::BlockEnd, line_, {}});
                count_lines(pos_, end);
                line_starting_ = s_[end - 1] == '\n';
                pos_ = end;
                return;
            }
            if (size_t n = skip_spaces(s_, pos_); n != pos_) {
                count_lines(pos_, n);
                pos_ = n;
                continue;
            }
            if (lex_number() || lex_name() || lex_string()) continue;
            lex_operator(balance);
        }
    }

    // float_re, then integer_re.
    bool lex_number() {
        const size_t start = pos_;
        if (!is_digit(s_[start])) return false;
        if (start > 0 && s_[start - 1] == '.') {
            // (?<!\.) only guards the float rule; integer_re still applies
        } else if (size_t end = match_float(start); end != std::string::npos) {
            std::string text;
            for (size_t i = start; i < end; ++i)
                if (s_[i] != '_') text += s_[i];
            errno = 0;
            const double v = std::strtod(text.c_str(), nullptr);
            Token t{Tok::Float, line_, s_.substr(start, end - start)};
            t.fval = v;
            out_.push_back(std::move(t));
            pos_ = end;
            return true;
        }
        return lex_integer();
    }

    // (\d+_)*\d+ at i: end or npos.
    size_t match_digits(size_t i) const {
        if (i >= s_.size() || !is_digit(s_[i])) return std::string::npos;
        while (true) {
            while (i < s_.size() && is_digit(s_[i])) ++i;
            if (i + 1 < s_.size() && s_[i] == '_' && is_digit(s_[i + 1])) { ++i; continue; }
            return i;
        }
    }

    // (\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+)
    size_t match_float(size_t i) const {
        const size_t int_end = match_digits(i);
        size_t p = int_end;
        bool fraction = false;
        if (p < s_.size() && s_[p] == '.') {
            const size_t f = match_digits(p + 1);
            if (f != std::string::npos) {
                p = f;
                fraction = true;
            }
        }
        if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
            size_t q = p + 1;
            if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
            const size_t x = match_digits(q);
            if (x != std::string::npos) return x;
        }
        return fraction ? p : std::string::npos;
    }

    bool lex_integer() {
        const size_t start = pos_;
        size_t p = start;
        int base = 10;
        auto digit_ok = [&](char c) {
            switch (base) {
            case 2: return c == '0' || c == '1';
            case 8: return c >= '0' && c <= '7';
            case 16: return hex_val(c) >= 0;
            default: return is_digit(c);
            }
        };
        std::string digits;
        if (s_[p] == '0' && p + 1 < s_.size() && strchr("bBoOxX", s_[p + 1]) && s_[p + 1] != '\0') {
            const char b = static_cast<char>(s_[p + 1] | 0x20);
            base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
            size_t q = p + 2;
            // (_?[digits])+
            while (true) {
                size_t r = q;
                if (r < s_.size() && s_[r] == '_') ++r;
                if (r < s_.size() && digit_ok(s_[r])) {
                    digits += s_[r];
                    q = r + 1;
                } else {
                    break;
                }
            }
            if (digits.empty()) base = 10;   // fall back to "0(_?0)*"
            else p = q;
        }
        if (base == 10) {
            digits.clear();
            if (s_[p] == '0') {   // 0(_?0)*
                digits.assign(1, '0');
                ++p;
                while (true) {
                    size_t r = p;
                    if (r < s_.size() && s_[r] == '_') ++r;
                    if (r < s_.size() && s_[r] == '0') p = r + 1;
                    else break;
                }
            } else {              // [1-9](_?\d)*
                digits += s_[p++];
                while (true) {
                    size_t r = p;
                    if (r < s_.size() && s_[r] == '_') ++r;
                    if (r < s_.size() && is_digit(s_[r])) {
                        digits += s_[r];
                        p = r + 1;
                    } else {
                        break;
                    }
                }
            }
        }
        errno = 0;
        const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
        if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX))
            throw LexError{"unsupported: integer literal " + s_.substr(start, p - start) +
                               " does not fit in 64 bits", line_};
        Token t{Tok::Int, line_, s_.substr(start, p - start)};
        t.ival = static_cast<int64_t>(v);
        out_.push_back(std::move(t));
        pos_ = p;
        return true;
    }

    bool lex_name() {
        if (!is_name_start(s_[pos_])) {
            if (static_cast<unsigned char>(s_[pos_]) >= 0x80 && !space_at(s_, pos_))
                throw LexError{"unsupported: non-ASCII character in a tag (identifiers must be ASCII)", line_};
            return false;
        }
        size_t p = pos_;
        while (p < s_.size() && is_name_char(s_[p])) ++p;
        if (p < s_.size() && static_cast<unsigned char>(s_[p]) >= 0x80 && !space_at(s_, p))
            throw LexError{"unsupported: non-ASCII character in an identifier", line_};
        out_.push_back({Tok::Name, line_, s_.substr(pos_, p - pos_)});
        pos_ = p;
        return true;
    }

    // '([^'\\]*(?:\\.[^'\\]*)*)'|"([^"\\]*(?:\\.[^"\\]*)*)"
    bool lex_string() {
        const char q = s_[pos_];
        if (q != '\'' && q != '"') return false;
        size_t p = pos_ + 1;
        while (p < s_.size() && s_[p] != q) p += s_[p] == '\\' ? 2 : 1;
        if (p >= s_.size()) throw LexError{"unexpected char '" + std::string(1, q) + "'", line_};
        const int line = line_;
        std::string text = decode_string(std::string_view(s_).substr(pos_ + 1, p - pos_ - 1), line);
        count_lines(pos_, p + 1);
        out_.push_back({Tok::String, line, std::move(text)});
        pos_ = p + 1;
        return true;
    }

    void lex_operator(std::string &balance) {
        static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
        for (const char *op : two)
            if (s_.compare(pos_, 2, op) == 0) {
                out_.push_back({Tok::Op, line_, op});
                pos_ += 2;
                return;
            }
        const char c = s_[pos_];
        if (!strchr("+-/*%~[](){}><=.:|,;", c) || c == '\0')
            throw LexError{std::string("unexpected char '") + c + "'", line_};
        if (c == '(' || c == '[' || c == '{') {
            balance += c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (balance.empty()) throw LexError{std::string("unexpected '") + c + "'", line_};
            if (balance.back() != c)
                throw LexError{std::string("unexpected '") + c + "', expected '" + balance.back() + "'", line_};
            balance.pop_back();
        }
        out_.push_back({Tok::Op, line_, std::string(1, c)});
        ++pos_;
    }
};

}  // namespace

bool lex(std::string_view source, std::vector<Token> &out, std::string &err) {
    out.clear();
    if (!utf8_valid(source)) {
        err = "template is not valid UTF-8";
        return false;
    }
    try {
        Lexer(normalize_newlines(source), out).run();
        return true;
    } catch (const LexError &e) {
        err = "line " + std::to_string(e.line) + ": " + e.msg;
        return false;
    }
}

}  // namespace vlm::jinja
