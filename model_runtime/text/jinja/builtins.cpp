// builtins.cpp: jinja2's builtin filters and tests (jinja2/filters.py,
// jinja2/tests.py), the Python str / list / dict methods templates call, and
// the globals transformers installs. Each follows the Python code it is named
// after, including what it does with Undefined and None.
//
// Leaves out (load error): filesizeformat, pprint, random, urlize, urlencode,
// wordwrap, xmlattr, striptags, groupby, batch, slice, wordcount; str methods
// encode, translate, maketrans, format_map, expandtabs, casefold, swapcase,
// istitle, isidentifier, isprintable, isnumeric, isdecimal.
// Case mapping is Unicode's simple mapping (glibc C.UTF-8) plus the common
// special cases (ß, İ, ﬀ..ﬆ); Python's final-sigma rule is not applied.
#include "text/jinja/builtins.h"

#include "text/jinja/interp.h"

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <locale.h>
#include <wctype.h>

namespace vlm::jinja {

namespace {

// --- names -------------------------------------------------------------------

struct NameId {
    const char *name;
    int id;
};

const NameId kFilters[] = {
    {"abs", int(FilterId::Abs)}, {"attr", int(FilterId::Attr)}, {"capitalize", int(FilterId::Capitalize)},
    {"center", int(FilterId::Center)}, {"count", int(FilterId::Count)}, {"d", int(FilterId::Default)},
    {"default", int(FilterId::Default)}, {"dictsort", int(FilterId::Dictsort)}, {"e", int(FilterId::Escape)},
    {"escape", int(FilterId::Escape)}, {"first", int(FilterId::First)}, {"float", int(FilterId::Float)},
    {"forceescape", int(FilterId::Forceescape)}, {"format", int(FilterId::Format)},
    {"indent", int(FilterId::Indent)}, {"int", int(FilterId::Int)}, {"items", int(FilterId::Items)},
    {"join", int(FilterId::Join)}, {"last", int(FilterId::Last)}, {"length", int(FilterId::Length)},
    {"list", int(FilterId::List)}, {"lower", int(FilterId::Lower)}, {"map", int(FilterId::Map)},
    {"max", int(FilterId::Max)}, {"min", int(FilterId::Min)}, {"reject", int(FilterId::Reject)},
    {"rejectattr", int(FilterId::Rejectattr)}, {"replace", int(FilterId::Replace)},
    {"reverse", int(FilterId::Reverse)}, {"round", int(FilterId::Round)}, {"safe", int(FilterId::Safe)},
    {"select", int(FilterId::Select)}, {"selectattr", int(FilterId::Selectattr)}, {"sort", int(FilterId::Sort)},
    {"string", int(FilterId::String)}, {"sum", int(FilterId::Sum)}, {"title", int(FilterId::Title)},
    {"tojson", int(FilterId::Tojson)}, {"trim", int(FilterId::Trim)}, {"truncate", int(FilterId::Truncate)},
    {"unique", int(FilterId::Unique)}, {"upper", int(FilterId::Upper)},
};
const char *const kUnsupportedFilters[] = {"filesizeformat", "pprint", "random", "urlize", "urlencode",
                                           "wordwrap", "xmlattr", "striptags", "groupby", "batch",
                                           "slice", "wordcount", "mark_unsafe"};

const NameId kTests[] = {
    {"boolean", int(TestId::Boolean)}, {"callable", int(TestId::Callable)}, {"defined", int(TestId::Defined)},
    {"divisibleby", int(TestId::Divisibleby)}, {"eq", int(TestId::Eq)}, {"equalto", int(TestId::Eq)},
    {"==", int(TestId::Eq)}, {"escaped", int(TestId::Escaped)}, {"even", int(TestId::Even)},
    {"false", int(TestId::False)}, {"filter", int(TestId::Filter)}, {"float", int(TestId::Float)},
    {"ge", int(TestId::Ge)}, {">=", int(TestId::Ge)}, {"gt", int(TestId::Gt)}, {"greaterthan", int(TestId::Gt)},
    {">", int(TestId::Gt)}, {"in", int(TestId::In)}, {"integer", int(TestId::Integer)},
    {"iterable", int(TestId::Iterable)}, {"le", int(TestId::Le)}, {"<=", int(TestId::Le)},
    {"lower", int(TestId::Lower)}, {"lt", int(TestId::Lt)}, {"lessthan", int(TestId::Lt)}, {"<", int(TestId::Lt)},
    {"mapping", int(TestId::Mapping)}, {"ne", int(TestId::Ne)}, {"!=", int(TestId::Ne)},
    {"none", int(TestId::None)}, {"number", int(TestId::Number)}, {"odd", int(TestId::Odd)},
    {"sameas", int(TestId::Sameas)}, {"sequence", int(TestId::Sequence)}, {"string", int(TestId::String)},
    {"test", int(TestId::Test)}, {"true", int(TestId::True)}, {"undefined", int(TestId::Undefined)},
    {"upper", int(TestId::Upper)},
};

const char *const kStrMethods[] = {
    "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha", "isascii",
    "isdigit", "islower", "isspace", "isupper", "join", "ljust", "lower", "lstrip", "partition",
    "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip",
    "split", "splitlines", "startswith", "strip", "title", "upper", "zfill"};
const char *const kUnsupportedMethods[] = {"encode", "translate", "maketrans", "format_map", "expandtabs",
                                           "casefold", "swapcase", "istitle", "isidentifier", "isprintable",
                                           "isnumeric", "isdecimal", "fromkeys"};
const char *const kDictMethods[] = {"items", "keys", "values", "get", "copy"};
const char *const kDictUnsafe[] = {"pop", "popitem", "setdefault", "update", "clear"};
const char *const kListMethods[] = {"index", "count", "copy"};
const char *const kListUnsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};

template <size_t N>
bool in_list(const char *const (&list)[N], std::string_view name) {
    for (const char *n : list)
        if (name == n) return true;
    return false;
}

// --- argument binding ----------------------------------------------------------

// Python-style binding of positional and keyword arguments to `names`.
struct Bound {
    std::vector<Value> v;
    std::vector<bool> has;
    const Value &operator[](size_t i) const { return v[i]; }
};

Bound bind(Interp &in, const char *fn, std::initializer_list<const char *> names, size_t required, Args &args,
           Kwargs &kwargs, int line, bool positional_only = false) {
    if (positional_only && !kwargs.empty())
        in.fail(std::string("TypeError: ") + fn + "() takes no keyword arguments", line);
    Bound b;
    b.v.resize(names.size());
    b.has.assign(names.size(), false);
    if (args.size() > names.size())
        in.fail(std::string("TypeError: ") + fn + "() takes at most " + std::to_string(names.size()) +
                    " argument(s) (" + std::to_string(args.size()) + " given)", line);
    for (size_t i = 0; i < args.size(); ++i) {
        b.v[i] = args[i];
        b.has[i] = true;
    }
    for (auto &kv : kwargs) {
        size_t i = 0;
        for (const char *n : names) {
            if (kv.first == n) break;
            ++i;
        }
        if (i == names.size())
            in.fail(std::string("TypeError: ") + fn + "() got an unexpected keyword argument '" + kv.first + "'",
                    line);
        if (b.has[i])
            in.fail(std::string("TypeError: ") + fn + "() got multiple values for argument '" + kv.first + "'",
                    line);
        b.v[i] = kv.second;
        b.has[i] = true;
    }
    for (size_t i = 0; i < required; ++i)
        if (!b.has[i])
            in.fail(std::string("TypeError: ") + fn + "() missing required argument '" + *(names.begin() + i) + "'",
                    line);
    return b;
}

int64_t int_arg(Interp &in, const Value &v, const char *what, int line) {
    if (!v.is_int_like())
        in.fail(std::string("TypeError: ") + what + " must be an integer, not " + type_name(v), line);
    return v.as_int();
}

// --- Unicode case and classes ----------------------------------------------------

locale_t utf8_locale() {
    static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return loc;
}

uint32_t cp_upper(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    locale_t l = utf8_locale();
    return l ? static_cast<uint32_t>(towupper_l(static_cast<wint_t>(c), l)) : c;
}
uint32_t cp_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    locale_t l = utf8_locale();
    return l ? static_cast<uint32_t>(towlower_l(static_cast<wint_t>(c), l)) : c;
}
bool cp_isupper(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z';
    locale_t l = utf8_locale();
    return l && iswupper_l(static_cast<wint_t>(c), l);
}
bool cp_islower(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z';
    locale_t l = utf8_locale();
    return l && iswlower_l(static_cast<wint_t>(c), l);
}
bool cp_iscased(uint32_t c) { return cp_isupper(c) || cp_islower(c) || cp_upper(c) != c || cp_lower(c) != c; }
bool cp_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    locale_t l = utf8_locale();
    return l && iswalpha_l(static_cast<wint_t>(c), l);
}
// str.isdigit(): Unicode Numeric_Type Decimal or Digit. The decimal blocks of
// the common scripts plus super/subscript and circled digits; not exhaustive.
bool cp_isdigit(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    static const uint32_t zeros[] = {0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66,
                                     0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810,
                                     0xFF10, 0x2080, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6};
    for (uint32_t z : zeros)
        if (c >= z && c <= z + 9) return true;
    return c == 0xB2 || c == 0xB3 || c == 0xB9 || c == 0x2070 || (c >= 0x2074 && c <= 0x2079) ||
           (c >= 0x2460 && c <= 0x2468) || (c >= 0x2776 && c <= 0x277E);
}

// Full (special-casing) mappings for the few common code points that need one.
void append_upper(std::string &out, uint32_t c) {
    switch (c) {
    case 0xDF: out += "SS"; return;
    case 0xFB00: out += "FF"; return;
    case 0xFB01: out += "FI"; return;
    case 0xFB02: out += "FL"; return;
    case 0xFB03: out += "FFI"; return;
    case 0xFB04: out += "FFL"; return;
    case 0xFB05:
    case 0xFB06: out += "ST"; return;
    default: utf8_append(out, cp_upper(c));
    }
}
void append_lower(std::string &out, uint32_t c) {
    if (c == 0x130) { out += "i\xCC\x87"; return; }
    utf8_append(out, cp_lower(c));
}

std::string str_upper(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) append_upper(out, utf8_next(s, i));
    return out;
}
// str.lower(), with Unicode's Final_Sigma rule for U+03A3 (case-ignorable
// characters between the letters are not skipped).
std::string str_lower(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    bool prev_cased = false;
    for (size_t i = 0; i < s.size();) {
        const uint32_t c = utf8_next(s, i);
        if (c == 0x3A3) {
            size_t j = i;
            const bool next_cased = j < s.size() && cp_iscased(utf8_next(s, j));
            out += prev_cased && !next_cased ? "\xCF\x82" : "\xCF\x83";
        } else {
            append_lower(out, c);
        }
        prev_cased = cp_iscased(c);
    }
    return out;
}
// str.title(): upper-case the first cased character of each run, lower the rest.
std::string str_title(std::string_view s) {
    std::string out;
    bool prev_cased = false;
    for (size_t i = 0; i < s.size();) {
        const uint32_t c = utf8_next(s, i);
        if (prev_cased) append_lower(out, c);
        else append_upper(out, c);
        prev_cased = cp_iscased(c);
    }
    return out;
}
// str.capitalize()
std::string str_capitalize(std::string_view s) {
    std::string out;
    bool first = true;
    for (size_t i = 0; i < s.size();) {
        const uint32_t c = utf8_next(s, i);
        if (first) append_upper(out, c);
        else append_lower(out, c);
        first = false;
    }
    return out;
}

std::vector<uint32_t> code_points(std::string_view s) {
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < s.size();) cps.push_back(utf8_next(s, i));
    return cps;
}

// str.strip / lstrip / rstrip with chars=None (whitespace) or a set of chars.
std::string str_strip(std::string_view s, const Value *chars, bool left, bool right) {
    std::vector<uint32_t> set;
    if (chars) set = code_points(chars->as_str());
    auto strip_it = [&](uint32_t c) {
        if (!chars) return py_isspace(c);
        return std::find(set.begin(), set.end(), c) != set.end();
    };
    size_t b = 0, e = s.size();
    if (left)
        while (b < e) {
            size_t j = b;
            if (!strip_it(utf8_next(s, j))) break;
            b = j;
        }
    if (right)
        while (e > b) {
            size_t start = e - 1;
            while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
            size_t j = start;
            if (!strip_it(utf8_next(s, j))) break;
            e = start;
        }
    return std::string(s.substr(b, e - b));
}

// str.split(sep=None, maxsplit=-1) / rsplit
std::vector<std::string> str_split(std::string_view s, const Value *sep, int64_t maxsplit, bool from_right) {
    std::vector<std::string> parts;
    if (!sep) {   // CPython split_whitespace / rsplit_whitespace, on code points
        std::vector<size_t> offs;   // byte offset of each code point, plus the end
        std::vector<bool> sp;
        for (size_t i = 0; i < s.size();) {
            offs.push_back(i);
            sp.push_back(py_isspace(utf8_next(s, i)));
        }
        offs.push_back(s.size());
        const int64_t n = static_cast<int64_t>(sp.size());
        auto piece = [&](int64_t a, int64_t b) { return std::string(s.substr(offs[a], offs[b] - offs[a])); };
        int64_t count = maxsplit < 0 ? INT64_MAX : maxsplit;
        if (!from_right) {
            int64_t i = 0;
            while (count-- > 0) {
                while (i < n && sp[i]) ++i;
                if (i == n) break;
                const int64_t j = i++;
                while (i < n && !sp[i]) ++i;
                parts.push_back(piece(j, i));
            }
            if (i < n) {
                while (i < n && sp[i]) ++i;
                if (i != n) parts.push_back(piece(i, n));
            }
            return parts;
        }
        int64_t i = n - 1;
        std::vector<std::string> rev;
        while (count-- > 0) {
            while (i >= 0 && sp[i]) --i;
            if (i < 0) break;
            const int64_t j = i--;
            while (i >= 0 && !sp[i]) --i;
            rev.push_back(piece(i + 1, j + 1));
        }
        if (i >= 0) {
            while (i >= 0 && sp[i]) --i;
            if (i >= 0) rev.push_back(piece(0, i + 1));
        }
        parts.assign(rev.rbegin(), rev.rend());
        return parts;
    }
    const std::string &d = sep->as_str();
    if (!from_right) {
        size_t start = 0;
        int64_t n = 0;
        while (maxsplit < 0 || n < maxsplit) {
            const size_t p = s.find(d, start);
            if (p == std::string_view::npos) break;
            parts.emplace_back(s.substr(start, p - start));
            start = p + d.size();
            ++n;
        }
        parts.emplace_back(s.substr(start));
        return parts;
    }
    size_t end = s.size();
    int64_t n = 0;
    std::vector<std::string> rev;
    while (maxsplit < 0 || n < maxsplit) {
        if (end < d.size()) break;
        const size_t p = s.rfind(d, end - d.size());
        if (p == std::string_view::npos) break;
        rev.emplace_back(s.substr(p + d.size(), end - p - d.size()));
        end = p;
        ++n;
    }
    rev.emplace_back(s.substr(0, end));
    parts.assign(rev.rbegin(), rev.rend());
    return parts;
}

// str.splitlines(keepends)
std::vector<std::string> str_splitlines(std::string_view s, bool keepends) {
    std::vector<std::string> lines;
    size_t start = 0, i = 0;
    while (i < s.size()) {
        const size_t at = i;
        const uint32_t c = utf8_next(s, i);
        const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
                         c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) continue;
        size_t end = i;
        if (c == '\r' && i < s.size() && s[i] == '\n') end = ++i;
        lines.emplace_back(s.substr(start, (keepends ? end : at) - start));
        start = end;
    }
    if (start < s.size()) lines.emplace_back(s.substr(start));
    return lines;
}

// str.replace(old, new, count)
std::string str_replace(std::string_view s, std::string_view old, std::string_view nw, int64_t count) {
    std::string out;
    if (old.empty()) {   // insert before every code point and at the end
        int64_t n = 0;
        size_t i = 0;
        while (i <= s.size()) {
            if (count >= 0 && n >= count) {
                out.append(s.substr(i));
                return out;
            }
            out.append(nw);
            ++n;
            if (i == s.size()) break;
            const size_t start = i;
            utf8_next(s, i);
            out.append(s.substr(start, i - start));
        }
        return out;
    }
    size_t start = 0;
    int64_t n = 0;
    while (count < 0 || n < count) {
        const size_t p = s.find(old, start);
        if (p == std::string_view::npos) break;
        out.append(s.substr(start, p - start));
        out.append(nw);
        start = p + old.size();
        ++n;
    }
    out.append(s.substr(start));
    return out;
}

// Code point index of byte offset `b` in s.
int64_t cp_index(std::string_view s, size_t b) {
    int64_t n = 0;
    for (size_t i = 0; i < b; ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++n;
    return n;
}

std::string soft_str(const Value &v) { return to_str(v); }

Value str_value(Interp &in, std::string s, int line, bool safe = false) { return in.make_str(std::move(s), line, safe); }

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

// str.center(width, fill)
std::string str_pad(std::string_view s, int64_t width, const std::string &fill, int how /* 0 center, 1 ljust, 2 rjust */) {
    const int64_t len = static_cast<int64_t>(cp_index(s, s.size()));
    if (width <= len) return std::string(s);
    const int64_t marg = width - len;
    int64_t left = 0;
    if (how == 0) left = marg / 2 + (marg & width & 1);
    else if (how == 2) left = marg;
    std::string out;
    for (int64_t i = 0; i < left; ++i) out += fill;
    out += s;
    for (int64_t i = 0; i < marg - left; ++i) out += fill;
    return out;
}

// Python float(str): strips whitespace, accepts _ between digits, inf/nan.
bool parse_py_float(const std::string &raw, double &out) {
    std::string s = str_strip(raw, nullptr, true, true);
    std::string t;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 >= s.size() || !isdigit(static_cast<unsigned char>(s[i - 1])) ||
                !isdigit(static_cast<unsigned char>(s[i + 1])))
                return false;
            continue;
        }
        t += s[i];
    }
    if (t.empty()) return false;
    std::string low = str_lower(t);
    size_t k = (low[0] == '+' || low[0] == '-') ? 1 : 0;
    const std::string body = low.substr(k);
    if (body == "inf" || body == "infinity" || body == "nan") {
        out = body == "nan" ? NAN : (low[0] == '-' ? -INFINITY : INFINITY);
        return true;
    }
    for (char c : body)
        if (!(isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
    char *end = nullptr;
    out = std::strtod(t.c_str(), &end);
    return end && *end == '\0' && body.find_first_of("0123456789") != std::string::npos;
}

// Python int(str, base)
bool parse_py_int(const std::string &raw, int base, int64_t &out) {
    std::string s = str_strip(raw, nullptr, true, true);
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i + 1 < s.size() && s[i] == '0') {
        const char p = static_cast<char>(s[i + 1] | 0x20);
        if ((p == 'x' && (base == 16 || base == 0)) || (p == 'o' && (base == 8 || base == 0)) ||
            (p == 'b' && (base == 2 || base == 0))) {
            base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
            i += 2;
            if (i < s.size() && s[i] == '_') ++i;
        }
    }
    if (base == 0) base = 10;
    if (i >= s.size()) return false;
    unsigned long long v = 0;
    bool prev_digit = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '_') {
            if (!prev_digit || i + 1 >= s.size()) return false;
            prev_digit = false;
            continue;
        }
        int d = -1;
        if (c >= '0' && c <= '9') d = c - '0';
        else if ((c | 32) >= 'a' && (c | 32) <= 'z') d = (c | 32) - 'a' + 10;
        if (d < 0 || d >= base) return false;
        if (v > (static_cast<unsigned long long>(INT64_MAX) - static_cast<unsigned>(d)) / static_cast<unsigned>(base))
            return false;
        v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
        prev_digit = true;
    }
    if (!prev_digit) return false;
    out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
    return true;
}

// make_attrgetter: "a.b.0" looked up with getitem semantics, integer parts as ints.
Value attr_path(Interp &in, const Value &item, const Value &attribute, int line) {
    if (!attribute.is_str()) return in.getitem(item, attribute, line);
    Value cur = item;
    const std::string &path = attribute.as_str();
    size_t start = 0;
    while (true) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        bool digits = !part.empty();
        for (char c : part)
            if (!isdigit(static_cast<unsigned char>(c))) digits = false;
        int64_t n = 0;
        if (digits && parse_py_int(part, 10, n)) cur = in.getitem(cur, Value::integer(n), line);
        else cur = in.getitem(cur, Value::str(part), line);
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return cur;
}

Value ignore_case(const Value &v) { return v.is_str() ? Value::str(str_lower(v.as_str())) : v; }

Value sort_key(Interp &in, const Value &item, const Value *attribute, bool case_sensitive, int line) {
    if (!attribute || attribute->is_none()) return case_sensitive ? item : ignore_case(item);
    if (attribute->is_str() && attribute->as_str().find(',') != std::string::npos) {
        std::vector<Value> keys;
        const std::string &a = attribute->as_str();
        size_t start = 0;
        while (true) {
            const size_t c = a.find(',', start);
            Value k = attr_path(in, item, Value::str(a.substr(start, c == std::string::npos ? std::string::npos : c - start)), line);
            keys.push_back(case_sensitive ? k : ignore_case(k));
            if (c == std::string::npos) break;
            start = c + 1;
        }
        return Value::list(std::move(keys));
    }
    Value k = attr_path(in, item, *attribute, line);
    return case_sensitive ? k : ignore_case(k);
}

// sorted()'s reverse= must be an int (bool included).
bool sort_reverse(Interp &in, const Bound &b, size_t i, int line) {
    if (!b.has[i]) return false;
    if (!b[i].is_int_like())
        in.fail(std::string("TypeError: '") + type_name(b[i]) + "' object cannot be interpreted as an integer", line);
    return b[i].as_int() != 0;
}

// sorted(items, key, reverse): stable, like Python's.
std::vector<Value> sorted(Interp &in, std::vector<Value> items, const std::vector<Value> &keys, bool reverse, int line) {
    std::vector<size_t> idx(items.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    in.tick(items.size() * 8 + 1, line);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        return reverse ? in.less(keys[b], keys[a], line) : in.less(keys[a], keys[b], line);
    });
    std::vector<Value> out;
    out.reserve(items.size());
    for (size_t i : idx) out.push_back(std::move(items[i]));
    return out;
}

bool hashable(const Value &v, int depth = 0) {
    if (depth > kMaxValueNesting) throw Error("RecursionError: values nested too deeply to hash");
    if (v.kind() == Kind::Dict || v.kind() == Kind::Namespace) return false;
    if (v.is_list()) {
        if (!v.is_tuple()) return false;
        for (const auto &x : v.items())
            if (!hashable(x, depth + 1)) return false;
    }
    return true;
}

JsonOptions json_options(Interp &in, const Bound &b, std::string &indent_buf, int line) {
    JsonOptions o;
    o.ensure_ascii = b.has[0] && truthy(b[0]);
    if (b.has[1] && !b[1].is_none()) {
        if (b[1].is_str()) indent_buf = b[1].as_str();
        else if (b[1].is_int_like()) indent_buf.assign(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(b[1].as_int(), 1 << 16))), ' ');
        else in.fail(std::string("TypeError: tojson indent must be an int or a string, not ") + type_name(b[1]), line);
        o.indent = &indent_buf;
    }
    if (b.has[2] && !b[2].is_none()) {
        if (!b[2].is_list() || b[2].flavor() > 1 || b[2].items().size() != 2 || !b[2].items()[0].is_str() ||
            !b[2].items()[1].is_str())
            in.fail("TypeError: tojson separators must be a pair of strings", line);
        o.item_sep = b[2].items()[0].as_str();
        o.key_sep = b[2].items()[1].as_str();
        if (o.item_sep.empty()) o.item_sep = std::string(1, '\0');   // marker: an explicit empty separator
    }
    o.sort_keys = b.has[3] && truthy(b[3]);
    return o;
}

std::string to_json(Interp &in, const Value &v, JsonOptions o, int line) {
    std::string out;
    const bool empty_sep = o.item_sep.size() == 1 && o.item_sep[0] == '\0';
    if (empty_sep) {
        // append_json treats "" as "use the default"; emulate an explicit ""
        // by rendering with a marker and removing it.
        o.item_sep = std::string("\x01\x02", 2);
        append_json(out, v, o);
        std::string cleaned;
        for (size_t i = 0; i < out.size(); ++i) {
            if (out[i] == '\x01' && i + 1 < out.size() && out[i + 1] == '\x02') { ++i; continue; }
            cleaned += out[i];
        }
        out.swap(cleaned);
    } else {
        append_json(out, v, o);
    }
    in.charge(out.size(), line);
    return out;
}

// Python's round(x, ndigits) for floats: correctly rounded via printf.
double py_round(double x, int64_t nd) {
    if (!std::isfinite(x)) return x;
    if (nd == 0) return std::nearbyint(x);
    if (nd > 0) {
        if (nd > 308) return x;
        char buf[512];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(nd), x);
        return std::strtod(buf, nullptr);
    }
    const double p = std::pow(10.0, static_cast<double>(-nd));
    if (!std::isfinite(p)) return 0.0 * x;
    return std::nearbyint(x / p) * p;
}

// --- callables -------------------------------------------------------------------

struct MethodObj final : CallableObj {
    Value self;
    std::string nm;
    std::string name() const override { return nm; }
    Value call(Interp &in, Args &args, Kwargs &kwargs, int line) const override {
        return call_method(in, self, nm, args, kwargs, line);
    }
};

Value method(const Value &self, const std::string &name) {
    auto m = std::make_shared<MethodObj>();
    m->self = self;
    m->nm = name;
    return Value::callable(std::move(m));
}

Value iterable_or_fail(Interp &in, const Value &v, int line) {
    if (v.is_none() || v.is_number() || v.kind() == Kind::Namespace || v.kind() == Kind::Callable)
        in.fail(std::string("TypeError: '") + type_name(v) + "' object is not iterable", line);
    return v;
}

// select / reject / selectattr / rejectattr
Value select_reject(Interp &in, const Value &v, Args &args, Kwargs &kwargs, bool attr, bool select, int line) {
    if (!truthy(v)) return in.make_list({}, line, FGenerator);   // select_or_reject: `if value:`
    std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
    size_t off = 0;
    Value attribute;
    if (attr) {
        if (args.empty()) in.fail("FilterArgumentError: Missing parameter for attribute name", line);
        attribute = args[0];
        off = 1;
    }
    std::string test;
    const bool have_test = args.size() > off;
    if (have_test) {
        if (!args[off].is_str()) in.fail("TypeError: the test name must be a string", line);
        test = args[off].as_str();
    }
    Args targs(args.begin() + static_cast<std::ptrdiff_t>(std::min(args.size(), off + 1)), args.end());
    std::vector<Value> out;
    in.tick(items.size(), line);
    for (const Value &item : items) {
        Value x = attr ? attr_path(in, item, attribute, line) : item;
        bool r;
        if (have_test) {
            Args a = targs;
            Kwargs k = kwargs;
            r = apply_test_named(in, test, x, a, k, line);
        } else {
            r = truthy(x);
        }
        if (r == select) out.push_back(item);
    }
    return in.make_list(std::move(out), line, FGenerator);
}

Value map_filter(Interp &in, const Value &v, Args &args, Kwargs &kwargs, int line) {
    if (!truthy(v)) return in.make_list({}, line, FGenerator);   // sync_do_map: `if value:`
    std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
    std::vector<Value> out;
    out.reserve(items.size());
    in.tick(items.size(), line);
    if (args.empty()) {
        Value attribute, deflt;
        bool have_attr = false, have_default = false;
        for (auto &kv : kwargs) {
            if (kv.first == "attribute") { attribute = kv.second; have_attr = true; }
            else if (kv.first == "default") { deflt = kv.second; have_default = true; }
            else in.fail("FilterArgumentError: Unexpected keyword argument '" + kv.first + "'", line);
        }
        if (!have_attr) in.fail("FilterArgumentError: map requires a filter argument", line);
        for (const Value &item : items) {
            Value x = attr_path(in, item, attribute, line);
            if (have_default && !deflt.is_none() && x.is_undefined()) x = deflt;
            out.push_back(std::move(x));
        }
    } else {
        if (!args[0].is_str()) in.fail("TypeError: the filter name must be a string", line);
        const std::string name = args[0].as_str();
        Args fargs(args.begin() + 1, args.end());
        for (const Value &item : items) {
            Args a = fargs;
            Kwargs k = kwargs;
            out.push_back(apply_filter_named(in, name, item, a, k, line));
        }
    }
    return in.make_list(std::move(out), line, FGenerator);
}

Value min_max(Interp &in, const Value &v, Args &args, Kwargs &kwargs, bool is_max, int line) {
    Bound b = bind(in, is_max ? "max" : "min", {"case_sensitive", "attribute"}, 0, args, kwargs, line);
    std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    const bool cs = b.has[0] && truthy(b[0]);
    const Value *attr = b.has[1] ? &b[1] : nullptr;
    size_t best = 0;
    Value best_key = sort_key(in, items[0], attr, cs, line);
    in.tick(items.size(), line);
    for (size_t i = 1; i < items.size(); ++i) {
        Value k = sort_key(in, items[i], attr, cs, line);
        if (is_max ? in.less(best_key, k, line) : in.less(k, best_key, line)) {
            best = i;
            best_key = std::move(k);
        }
    }
    return items[best];
}

// jinja2's `indent` filter.
std::string indent_filter(const std::string &s0, const std::string &ind, bool first, bool blank) {
    const std::string s = s0 + "\n";
    std::vector<std::string> lines = str_splitlines(s, false);
    std::string rv;
    if (blank) {
        for (size_t i = 0; i < lines.size(); ++i) {
            if (i) rv += "\n" + ind;
            rv += lines[i];
        }
    } else if (!lines.empty()) {
        rv = lines[0];
        if (lines.size() > 1) {
            rv += "\n";
            for (size_t i = 1; i < lines.size(); ++i) {
                if (i > 1) rv += "\n";
                if (!lines[i].empty()) rv += ind;
                rv += lines[i];
            }
        }
    }
    if (first) rv = ind + rv;
    return rv;
}

// jinja2's `title` filter: words split at runs of [-\s({\[<].
std::string title_filter(const std::string &s) {
    std::string out;
    auto is_sep = [](uint32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
    size_t i = 0;
    while (i < s.size()) {
        size_t j = i;
        const bool sep = is_sep(utf8_next(s, j));
        size_t end = j;
        while (end < s.size()) {
            size_t k = end;
            if (is_sep(utf8_next(s, k)) != sep) break;
            end = k;
        }
        // item[0].upper() + item[1:].lower()
        append_upper(out, utf8_next(s, i));
        out += str_lower(std::string_view(s).substr(i, end - i));
        i = end;
    }
    return out;
}

}  // namespace

int find_filter(const std::string &name, std::string &why) {
    for (const auto &f : kFilters)
        if (name == f.name) return f.id;
    if (in_list(kUnsupportedFilters, name)) why = "unsupported: the '" + name + "' filter";
    else why = "No filter named '" + name + "'.";
    return -1;
}

int find_test(const std::string &name, std::string &why) {
    for (const auto &t : kTests)
        if (name == t.name) return t.id;
    why = "No test named '" + name + "'.";
    return -1;
}

bool is_unsupported_method(std::string_view name) { return in_list(kUnsupportedMethods, name); }

bool is_any_method_name(std::string_view name) {
    return in_list(kStrMethods, name) || in_list(kDictMethods, name) || in_list(kDictUnsafe, name) ||
           in_list(kListMethods, name) || in_list(kListUnsafe, name) || name == "cycle" || name == "changed";
}

Value find_method(const Value &self, const std::string &name) {
    switch (self.kind()) {
    case Kind::Str:
        if (in_list(kStrMethods, name)) return method(self, name);
        break;
    case Kind::Dict:
        if (in_list(kDictMethods, name)) return method(self, name);
        if (in_list(kDictUnsafe, name))
            return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.", true);
        break;
    case Kind::List:
        if (self.flavor() == FList || self.flavor() == FTuple) {
            if (in_list(kListMethods, name) && !(self.is_tuple() && name == "copy")) return method(self, name);
            if (self.flavor() == FList && in_list(kListUnsafe, name))
                return Value::undefined("access to attribute '" + name + "' of 'list' object is unsafe.", true);
        }
        break;
    case Kind::Callable:
        if (is_loop(self) && (name == "cycle" || name == "changed")) return method(self, name);
        break;
    default: break;
    }
    return Value();
}

Value call_method(Interp &in, const Value &self, const std::string &name, Args &args, Kwargs &kwargs, int line) {
    if (self.kind() == Kind::Callable) return loop_method(in, self, name, args, line);
    if (self.kind() == Kind::Dict) {
        const DictObj &d = self.dict_obj();
        if (name == "get") {
            Bound b = bind(in, "get", {"key", "default"}, 1, args, kwargs, line, true);
            if (!hashable(b[0])) in.fail(std::string("TypeError: unhashable type: '") + type_name(b[0]) + "'", line);
            if (const Value *v = d.find(b[0])) return *v;
            return b.has[1] ? b[1] : Value::none();
        }
        bind(in, name.c_str(), {}, 0, args, kwargs, line);
        if (name == "copy") return self;
        std::vector<Value> out;
        out.reserve(d.items.size());
        for (const auto &kv : d.items) {
            if (name == "items") out.push_back(Value::list({kv.first, kv.second}, FTuple));
            else out.push_back(name == "keys" ? kv.first : kv.second);
        }
        return in.make_list(std::move(out), line, name == "items" ? FDictItems : name == "keys" ? FDictKeys : FDictValues);
    }
    if (self.kind() == Kind::List) {
        const auto &items = self.items();
        if (name == "copy") {
            bind(in, "copy", {}, 0, args, kwargs, line);
            return in.make_list(items, line, FList);
        }
        Bound b = bind(in, name.c_str(), {"value"}, 1, args, kwargs, line, true);
        in.tick(items.size(), line);
        if (name == "count") {
            int64_t n = 0;
            for (const auto &x : items) n += equal(x, b[0]);
            return Value::integer(n);
        }
        for (size_t i = 0; i < items.size(); ++i)
            if (equal(items[i], b[0])) return Value::integer(static_cast<int64_t>(i));
        in.fail("ValueError: value is not in list", line);
    }
    // str
    const std::string &s = self.as_str();
    const bool safe = self.safe();
    in.tick(s.size() / 64 + 1, line);
    auto need_str = [&](const Value &v, const char *what) -> const std::string & {
        if (!v.is_str())
            in.fail(std::string("TypeError: ") + what + " must be str, not " + type_name(v), line);
        return v.as_str();
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        Bound b = bind(in, name.c_str(), {"chars"}, 0, args, kwargs, line, true);
        const Value *chars = b.has[0] && !b[0].is_none() ? &b[0] : nullptr;
        if (chars) need_str(*chars, "strip arg");
        return str_value(in, str_strip(s, chars, name != "rstrip", name != "lstrip"), line, safe);
    }
    if (name == "split" || name == "rsplit") {
        Bound b = bind(in, name.c_str(), {"sep", "maxsplit"}, 0, args, kwargs, line);
        const Value *sep = b.has[0] && !b[0].is_none() ? &b[0] : nullptr;
        if (sep && need_str(*sep, "sep").empty()) in.fail("ValueError: empty separator", line);
        const int64_t maxsplit = b.has[1] ? int_arg(in, b[1], "maxsplit", line) : -1;
        std::vector<Value> parts;
        for (auto &p : str_split(s, sep, maxsplit, name == "rsplit")) parts.push_back(Value::str(std::move(p), safe));
        in.charge(s.size(), line);
        return in.make_list(std::move(parts), line);
    }
    if (name == "splitlines") {
        Bound b = bind(in, name.c_str(), {"keepends"}, 0, args, kwargs, line);
        const bool keep = b.has[0] && int_arg(in, b[0], "keepends", line) != 0;   // bool(accept={int})
        std::vector<Value> parts;
        for (auto &p : str_splitlines(s, keep)) parts.push_back(Value::str(std::move(p), safe));
        in.charge(s.size(), line);
        return in.make_list(std::move(parts), line);
    }
    if (name == "startswith" || name == "endswith") {
        Bound b = bind(in, name.c_str(), {"prefix", "start", "end"}, 1, args, kwargs, line, true);
        if (b.has[1] || b.has[2]) in.fail("unsupported: start/end arguments of str." + name + "()", line);
        std::vector<Value> cands;
        if (b[0].is_list() && b[0].is_tuple()) cands = b[0].items();
        else if (b[0].is_str()) cands.push_back(b[0]);
        else in.fail("TypeError: " + name + " first arg must be str or a tuple of str, not " + type_name(b[0]), line);
        for (const auto &c : cands) {
            const std::string &p = need_str(c, "tuple for startswith/endswith item");
            if (p.size() > s.size()) continue;
            if (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0)
                return Value::boolean(true);
        }
        return Value::boolean(false);
    }
    if (name == "replace") {
        Bound b = bind(in, "replace", {"old", "new", "count"}, 2, args, kwargs, line, true);
        const int64_t count = b.has[2] ? int_arg(in, b[2], "count", line) : -1;
        std::string old = need_str(b[0], "replace() argument 1"), nw = need_str(b[1], "replace() argument 2");
        if (safe && !b[1].safe()) nw = html_escape(nw);   // Markup.replace escapes `new`
        if (!old.empty() && !nw.empty() && nw.size() > old.size()) {
            const size_t n = s.size() / old.size() + 1;
            if (n * (nw.size() - old.size()) > in.lim.max_output_bytes) in.fail("replace() result too large", line);
        } else if (old.empty() && nw.size() * (s.size() + 1) > in.lim.max_output_bytes) {
            in.fail("replace() result too large", line);
        }
        return str_value(in, str_replace(s, old, nw, count), line, safe);
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
        Bound b = bind(in, name.c_str(), {"sub", "start", "end"}, 1, args, kwargs, line, true);
        if (b.has[1] || b.has[2]) in.fail("unsupported: start/end arguments of str." + name + "()", line);
        const std::string &sub = need_str(b[0], "must be str");
        if (name == "count") {
            if (sub.empty()) return Value::integer(cp_index(s, s.size()) + 1);
            int64_t n = 0;
            for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
            return Value::integer(n);
        }
        const size_t p = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
        if (p == std::string::npos) {
            if (name == "index" || name == "rindex") in.fail("ValueError: substring not found", line);
            return Value::integer(-1);
        }
        return Value::integer(cp_index(s, p));
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        bind(in, name.c_str(), {}, 0, args, kwargs, line);
        std::string r = name == "upper" ? str_upper(s) : name == "lower" ? str_lower(s)
                        : name == "title" ? str_title(s) : str_capitalize(s);
        return str_value(in, std::move(r), line, safe);
    }
    if (name == "join") {
        Bound b = bind(in, "join", {"iterable"}, 1, args, kwargs, line, true);
        std::vector<Value> items = in.iterate(iterable_or_fail(in, b[0], line), line);
        std::string r;
        for (size_t i = 0; i < items.size(); ++i) {
            if (!items[i].is_str())
                in.fail("TypeError: sequence item " + std::to_string(i) + ": expected str instance, " +
                            type_name(items[i]) + " found", line);
            if (i) r += s;
            r += safe && !items[i].safe() ? html_escape(items[i].as_str()) : items[i].as_str();
            if (r.size() > in.lim.max_output_bytes) in.fail("join() result too large", line);
        }
        return str_value(in, std::move(r), line, safe);
    }
    if (name == "isalnum" || name == "isalpha" || name == "isascii" || name == "isdigit" || name == "isspace" ||
        name == "islower" || name == "isupper") {
        bind(in, name.c_str(), {}, 0, args, kwargs, line);
        if (name == "isascii") return Value::boolean(self.str_obj().ascii);
        if (s.empty()) return Value::boolean(false);
        if (name == "islower" || name == "isupper") {
            bool cased = false;
            for (size_t i = 0; i < s.size();) {
                const uint32_t c = utf8_next(s, i);
                if (name == "islower" ? cp_isupper(c) : cp_islower(c)) return Value::boolean(false);
                cased = cased || cp_iscased(c);
            }
            return Value::boolean(cased);
        }
        for (size_t i = 0; i < s.size();) {
            const uint32_t c = utf8_next(s, i);
            bool ok = name == "isalpha" ? cp_isalpha(c) : name == "isdigit" ? cp_isdigit(c)
                      : name == "isspace" ? py_isspace(c) : (cp_isalpha(c) || cp_isdigit(c));
            if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
    }
    if (name == "center" || name == "ljust" || name == "rjust") {
        Bound b = bind(in, name.c_str(), {"width", "fillchar"}, 1, args, kwargs, line, true);
        const int64_t w = int_arg(in, b[0], "width", line);
        std::string fill = " ";
        if (b.has[1]) {
            fill = need_str(b[1], "fill character");
            if (cp_index(fill, fill.size()) != 1)
                in.fail("TypeError: The fill character must be exactly one character long", line);
        }
        if (w > static_cast<int64_t>(in.lim.max_output_bytes)) in.fail(name + "() width too large", line);
        return str_value(in, str_pad(s, w, fill, name == "center" ? 0 : name == "ljust" ? 1 : 2), line, safe);
    }
    if (name == "zfill") {
        Bound b = bind(in, "zfill", {"width"}, 1, args, kwargs, line, true);
        const int64_t w = int_arg(in, b[0], "width", line);
        const int64_t len = cp_index(s, s.size());
        if (w <= len) return self;
        if (w > static_cast<int64_t>(in.lim.max_output_bytes)) in.fail("zfill() width too large", line);
        std::string r(static_cast<size_t>(w - len), '0');
        if (!s.empty() && (s[0] == '+' || s[0] == '-')) r = s.substr(0, 1) + r + s.substr(1);
        else r += s;
        return str_value(in, std::move(r), line, safe);
    }
    if (name == "partition" || name == "rpartition") {
        Bound b = bind(in, name.c_str(), {"sep"}, 1, args, kwargs, line, true);
        const std::string &sep = need_str(b[0], "sep");
        if (sep.empty()) in.fail("ValueError: empty separator", line);
        const size_t p = name == "partition" ? s.find(sep) : s.rfind(sep);
        std::vector<Value> parts;
        if (p == std::string::npos) {
            if (name == "partition") parts = {self, Value::str(""), Value::str("")};
            else parts = {Value::str(""), Value::str(""), self};
        } else {
            parts = {Value::str(s.substr(0, p)), b[0], Value::str(s.substr(p + sep.size()))};
        }
        return in.make_list(std::move(parts), line, FTuple);
    }
    if (name == "removeprefix" || name == "removesuffix") {
        Bound b = bind(in, name.c_str(), {"fix"}, 1, args, kwargs, line, true);
        const std::string &f = need_str(b[0], "argument");
        if (name == "removeprefix" && s.compare(0, f.size(), f) == 0 && f.size() <= s.size())
            return str_value(in, s.substr(f.size()), line, safe);
        if (name == "removesuffix" && f.size() <= s.size() && !f.empty() && s.compare(s.size() - f.size(), f.size(), f) == 0)
            return str_value(in, s.substr(0, s.size() - f.size()), line, safe);
        return self;
    }
    if (name == "format") {
        // str.format through the sandbox's formatter: {} {0} {name} and {{ }}
        std::string r;
        size_t auto_idx = 0;
        int numbering = 0;   // 1 automatic, 2 manual: mixing them is a ValueError
        for (size_t i = 0; i < s.size(); ++i) {
            const char c = s[i];
            if (c == '{' && i + 1 < s.size() && s[i + 1] == '{') { r += '{'; ++i; continue; }
            if (c == '}' && i + 1 < s.size() && s[i + 1] == '}') { r += '}'; ++i; continue; }
            if (c == '}') in.fail("ValueError: Single '}' encountered in format string", line);
            if (c != '{') { r += c; continue; }
            const size_t close = s.find('}', i);
            if (close == std::string::npos) in.fail("ValueError: Single '{' encountered in format string", line);
            const std::string field = s.substr(i + 1, close - i - 1);
            if (field.find_first_of(":!.[") != std::string::npos)
                in.fail("unsupported: format spec / conversion / attribute in str.format field '{" + field + "}'", line);
            const Value *v = nullptr;
            int64_t n;
            if (field.empty()) {
                if (numbering == 2)
                    in.fail("ValueError: cannot switch from manual field specification to automatic field numbering", line);
                numbering = 1;
                if (auto_idx >= args.size()) in.fail("IndexError: Replacement index out of range", line);
                v = &args[auto_idx++];
            } else if (parse_py_int(field, 10, n)) {
                if (numbering == 1)
                    in.fail("ValueError: cannot switch from automatic field numbering to manual field specification", line);
                numbering = 2;
                if (n < 0 || static_cast<size_t>(n) >= args.size()) in.fail("IndexError: Replacement index out of range", line);
                v = &args[static_cast<size_t>(n)];
            } else {
                for (auto &kv : kwargs)
                    if (kv.first == field) v = &kv.second;
                if (!v) in.fail("KeyError: '" + field + "'", line);
            }
            std::string piece = to_str(*v);
            r += safe && !v->safe() ? html_escape(piece) : piece;
            if (r.size() > in.lim.max_output_bytes) in.fail("format() result too large", line);
            i = close;
        }
        return str_value(in, std::move(r), line, safe);
    }
    in.fail("unsupported: str." + name + "()", line);
}

// --- printf-style formatting -------------------------------------------------------

std::string printf_format(Interp &in, const Value &fmt, const Value &argv, int line) {
    const std::string &f = fmt.as_str();
    std::vector<Value> args;
    const bool mapping = argv.kind() == Kind::Dict;
    if (argv.is_list() && argv.is_tuple()) args = argv.items();
    else args.push_back(argv);   // one value (a dict is both that and the %(key)s mapping)
    size_t next = 0;
    std::string out;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%') { out += f[i]; continue; }
        if (++i >= f.size()) in.fail("ValueError: incomplete format", line);
        if (f[i] == '%') { out += '%'; continue; }
        const Value *arg = nullptr;
        if (f[i] == '(') {
            const size_t close = f.find(')', i);
            if (close == std::string::npos || !mapping) in.fail("TypeError: format requires a mapping", line);
            const Value *v = argv.dict_obj().find(std::string_view(f).substr(i + 1, close - i - 1));
            if (!v) in.fail("KeyError: '" + f.substr(i + 1, close - i - 1) + "'", line);
            arg = v;
            i = close + 1;
        }
        std::string spec = "%";
        while (i < f.size() && strchr("-+ #0", f[i]) && f[i]) spec += f[i++];
        int64_t number = 0;
        while (i < f.size() && isdigit(static_cast<unsigned char>(f[i]))) {
            number = std::min<int64_t>(number * 10 + (f[i] - '0'), 1000000);
            spec += f[i++];
        }
        if (i < f.size() && f[i] == '.') {
            spec += f[i++];
            int64_t prec = 0;
            while (i < f.size() && isdigit(static_cast<unsigned char>(f[i]))) {
                prec = std::min<int64_t>(prec * 10 + (f[i] - '0'), 1000000);
                spec += f[i++];
            }
            number = std::max(number, prec);
        }
        if (number > 400) in.fail("unsupported: a % format width or precision over 400", line);
        if (i >= f.size()) in.fail("ValueError: incomplete format", line);
        if (f[i] == '*') in.fail("unsupported: '*' width in a % format", line);
        const char conv = f[i];
        if (!arg) {
            if (next >= args.size()) in.fail("TypeError: not enough arguments for format string", line);
            arg = &args[next++];
        }
        if (arg->is_undefined() && conv != 's') in.fail_undefined(*arg, line);
        char buf[512];
        if (spec.size() > 16) in.fail("unsupported: % format width/precision", line);
        switch (conv) {
        case 's':
        case 'r': {
            std::string sv;
            if (conv == 's') append_str(sv, *arg);
            else append_repr(sv, *arg);
            if (spec == "%") { out += sv; break; }
            // width / precision / '-' on code points
            bool left = spec.find('-') != std::string::npos;
            size_t p = 1;
            while (p < spec.size() && strchr("-+ #0", spec[p])) ++p;
            int64_t width = 0, prec = -1;
            while (p < spec.size() && isdigit(static_cast<unsigned char>(spec[p]))) width = width * 10 + (spec[p++] - '0');
            if (p < spec.size() && spec[p] == '.') {
                prec = 0;
                ++p;
                while (p < spec.size() && isdigit(static_cast<unsigned char>(spec[p]))) prec = prec * 10 + (spec[p++] - '0');
            }
            if (prec >= 0) {
                size_t b = 0;
                for (int64_t k = 0; k < prec && b < sv.size(); ++k) utf8_next(sv, b);
                sv.resize(b);
            }
            out += str_pad(sv, width, " ", left ? 1 : 2);
            break;
        }
        case 'd':
        case 'i':
        case 'x':
        case 'X':
        case 'o':
        case 'c': {
            int64_t n;
            if (arg->is_int_like()) n = arg->as_int();
            else if (arg->kind() == Kind::Float && conv != 'c' && conv != 'x' && conv != 'X' && conv != 'o') {
                if (!std::isfinite(arg->as_float())) in.fail("OverflowError: cannot convert float to integer", line);
                n = static_cast<int64_t>(std::trunc(arg->as_float()));
            } else {
                in.fail(std::string("TypeError: %") + conv + " format: a real number is required, not " + type_name(*arg), line);
            }
            if (conv == 'c') {
                if (n < 0 || n > 0x10FFFF) in.fail("OverflowError: %c arg not in range(0x110000)", line);
                utf8_append(out, static_cast<uint32_t>(n));
                break;
            }
            std::string sp = spec + "ll" + (conv == 'i' ? 'd' : conv);
            std::snprintf(buf, sizeof buf, sp.c_str(), static_cast<long long>(n));
            out += buf;
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            if (!arg->is_number())
                in.fail(std::string("TypeError: must be real number, not ") + type_name(*arg), line);
            std::snprintf(buf, sizeof buf, (spec + conv).c_str(), arg->as_float());
            out += buf;
            break;
        }
        default: in.fail(std::string("ValueError: unsupported format character '") + conv + "'", line);
        }
        if (out.size() > in.lim.max_output_bytes) in.fail("% format result too large", line);
    }
    if (!mapping && next < args.size()) in.fail("TypeError: not all arguments converted during string formatting", line);
    return out;
}

// --- filters --------------------------------------------------------------------

Value apply_filter_named(Interp &in, const std::string &name, const Value &v, Args &args, Kwargs &kwargs, int line) {
    std::string why;
    const int id = find_filter(name, why);
    if (id < 0) in.fail("TemplateRuntimeError: " + why, line);
    return apply_filter(in, static_cast<FilterId>(id), v, args, kwargs, line);
}

Value apply_filter(Interp &in, FilterId id, const Value &v, Args &args, Kwargs &kwargs, int line) {
    in.tick(1, line);
    switch (id) {
    case FilterId::Abs:
        bind(in, "abs", {}, 0, args, kwargs, line);
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (v.kind() == Kind::Float) return Value::number(std::fabs(v.as_float()));
        if (v.is_int_like()) {
            if (v.as_int() == INT64_MIN) in.fail("unsupported: integer overflow", line);
            return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
        }
        in.fail(std::string("TypeError: bad operand type for abs(): '") + type_name(v) + "'", line);
    case FilterId::Attr: {   // Python getattr only: no fallback to item lookup
        Bound b = bind(in, "attr", {"name"}, 1, args, kwargs, line);
        const std::string name = soft_str(b[0]);
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (v.kind() == Kind::Namespace || is_loop(v)) return in.getattr(v, name, line);
        Value m = find_method(v, name);
        if (!m.is_undefined() || m.obj()) return m;
        return Value::undefined(std::string("'") + type_name(v) + " object' has no attribute '" + name + "'");
    }
    case FilterId::Capitalize:
        bind(in, "capitalize", {}, 0, args, kwargs, line);
        return str_value(in, str_capitalize(soft_str(v)), line, v.safe());
    case FilterId::Center: {
        Bound b = bind(in, "center", {"width"}, 0, args, kwargs, line);
        const int64_t w = b.has[0] ? int_arg(in, b[0], "width", line) : 80;
        if (w > static_cast<int64_t>(in.lim.max_output_bytes)) in.fail("center() width too large", line);
        return str_value(in, str_pad(soft_str(v), w, " ", 0), line, v.safe());
    }
    case FilterId::Count:
    case FilterId::Length:
        bind(in, "length", {}, 0, args, kwargs, line);
        return Value::integer(static_cast<int64_t>(in.length(v, line)));
    case FilterId::Default: {
        Bound b = bind(in, "default", {"default_value", "boolean"}, 0, args, kwargs, line);
        const bool boolean = b.has[1] && truthy(b[1]);
        if (v.is_undefined() || (boolean && !truthy(v))) return b.has[0] ? b[0] : Value::str("");
        return v;
    }
    case FilterId::Dictsort: {
        Bound b = bind(in, "dictsort", {"case_sensitive", "by", "reverse"}, 0, args, kwargs, line);
        if (v.kind() != Kind::Dict) {
            if (v.is_undefined()) in.fail_undefined(v, line);
            in.fail(std::string("AttributeError: '") + type_name(v) + "' object has no attribute 'items'", line);
        }
        size_t pos = 0;
        if (b.has[1]) {
            const std::string by = to_str(b[1]);
            if (by == "value") pos = 1;
            else if (by != "key") in.fail("FilterArgumentError: You can only sort by either \"key\" or \"value\"", line);
        }
        const bool cs = b.has[0] && truthy(b[0]);
        std::vector<Value> items, keys;
        for (const auto &kv : v.dict_obj().items) {
            items.push_back(Value::list({kv.first, kv.second}, FTuple));
            const Value &k = pos ? kv.second : kv.first;
            keys.push_back(cs ? k : ignore_case(k));
        }
        return in.make_list(sorted(in, std::move(items), keys, sort_reverse(in, b, 2, line), line), line);
    }
    case FilterId::Escape:
    case FilterId::Forceescape:
        bind(in, "escape", {}, 0, args, kwargs, line);
        if (id == FilterId::Escape && v.is_str() && v.safe()) return v;
        return str_value(in, html_escape(soft_str(v)), line, true);
    case FilterId::First: {
        bind(in, "first", {}, 0, args, kwargs, line);
        if (v.is_list() && v.is_generator()) {
            ListObj &l = v.mutable_list();
            if (l.pos < l.items.size()) return l.items[l.pos++];
            return Value::undefined("No first item, sequence was empty.");
        }
        if (v.is_list()) {
            if (!v.items().empty()) return v.items()[0];
            return Value::undefined("No first item, sequence was empty.");
        }
        if (v.is_str() && !v.as_str().empty()) {
            size_t i = 0;
            utf8_next(v.as_str(), i);
            return Value::str(v.as_str().substr(0, i), v.safe());
        }
        if (v.kind() == Kind::Dict && !v.dict_obj().items.empty()) return v.dict_obj().items[0].first;
        if (v.is_str() || v.kind() == Kind::Dict || v.is_undefined())
            return Value::undefined("No first item, sequence was empty.");
        in.fail(std::string("TypeError: '") + type_name(v) + "' object is not iterable", line);
    }
    case FilterId::Last: {
        bind(in, "last", {}, 0, args, kwargs, line);
        if (v.is_list() && !v.is_generator()) {   // lists, tuples, dict views and ranges are reversible
            if (!v.items().empty()) return v.items().back();
            return Value::undefined("No last item, sequence was empty.");
        }
        if (v.is_str() && !v.as_str().empty()) {
            const std::string &s = v.as_str();
            size_t start = s.size() - 1;
            while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
            return Value::str(s.substr(start), v.safe());
        }
        if (v.kind() == Kind::Dict && !v.dict_obj().items.empty()) return v.dict_obj().items.back().first;
        if (v.is_str() || v.kind() == Kind::Dict || v.is_undefined())
            return Value::undefined("No last item, sequence was empty.");
        in.fail(std::string("TypeError: '") + type_name(v) + "' object is not reversible", line);
    }
    case FilterId::Float: {
        Bound b = bind(in, "float", {"default"}, 0, args, kwargs, line);
        const Value deflt = b.has[0] ? b[0] : Value::number(0.0);
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (v.kind() == Kind::Float) return v;
        if (v.is_int_like()) return Value::number(static_cast<double>(v.as_int()));
        double d;
        if (v.is_str() && parse_py_float(v.as_str(), d)) return Value::number(d);
        return deflt;
    }
    case FilterId::Format: {
        if (!args.empty() && !kwargs.empty())
            in.fail("FilterArgumentError: can't handle positional and keyword arguments at the same time", line);
        Value a;
        if (!kwargs.empty()) {
            auto d = std::make_shared<DictObj>();
            for (auto &kv : kwargs) d->set(Value::str(kv.first), kv.second);
            a = Value::dict(d);
        } else {
            a = Value::list(args, FTuple);
        }
        return str_value(in, printf_format(in, Value::str(soft_str(v)), a, line), line, v.safe());
    }
    case FilterId::Indent: {
        Bound b = bind(in, "indent", {"width", "first", "blank"}, 0, args, kwargs, line);
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (!v.is_str()) in.fail(std::string("TypeError: unsupported operand type(s) for +=: '") + type_name(v) + "' and 'str'", line);
        std::string ind = "    ";
        if (b.has[0]) {
            if (b[0].is_str()) ind = b[0].as_str();
            else {
                const int64_t w = int_arg(in, b[0], "width", line);
                if (w > 4096) in.fail("indent() width too large", line);
                ind.assign(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
            }
        }
        const size_t lines = static_cast<size_t>(std::count(v.as_str().begin(), v.as_str().end(), '\n')) + 1;
        if (lines * ind.size() > in.lim.max_output_bytes) in.fail("indent() result too large", line);
        return str_value(in, indent_filter(v.as_str(), ind, b.has[1] && truthy(b[1]), b.has[2] && truthy(b[2])),
                         line, v.safe());
    }
    case FilterId::Int: {
        Bound b = bind(in, "int", {"default", "base"}, 0, args, kwargs, line);
        const Value deflt = b.has[0] ? b[0] : Value::integer(0);
        // int(value, base) with a bad base raises TypeError / ValueError, which
        // do_int catches before trying int(float(value))
        int base = 10;
        bool base_ok = true;
        if (b.has[1]) {
            base_ok = b[1].is_int_like() && (b[1].as_int() == 0 || (b[1].as_int() >= 2 && b[1].as_int() <= 36));
            if (base_ok) base = static_cast<int>(b[1].as_int());
        }
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (v.is_int_like()) return Value::integer(v.as_int());
        if (v.kind() == Kind::Float) {
            const double d = v.as_float();
            if (std::isnan(d)) return deflt;
            if (std::isinf(d)) in.fail("OverflowError: cannot convert float infinity to integer", line);
            if (d >= 9.2233720368547758e18 || d < -9.2233720368547758e18) in.fail("unsupported: integer overflow", line);
            return Value::integer(static_cast<int64_t>(std::trunc(d)));
        }
        if (v.is_str()) {
            int64_t n;
            if (base_ok && parse_py_int(v.as_str(), base, n)) return Value::integer(n);
            double d;
            if (parse_py_float(v.as_str(), d)) {
                if (std::isnan(d) || std::isinf(d)) return deflt;
                if (d >= 9.2233720368547758e18 || d < -9.2233720368547758e18) in.fail("unsupported: integer overflow", line);
                return Value::integer(static_cast<int64_t>(std::trunc(d)));
            }
        }
        return deflt;
    }
    case FilterId::Items: {
        bind(in, "items", {}, 0, args, kwargs, line);
        if (v.is_undefined()) return in.make_list({}, line, FGenerator);
        if (v.kind() != Kind::Dict) in.fail("TypeError: Can only get item pairs from a mapping.", line);
        std::vector<Value> out;
        for (const auto &kv : v.dict_obj().items) out.push_back(Value::list({kv.first, kv.second}, FTuple));
        return in.make_list(std::move(out), line, FGenerator);
    }
    case FilterId::Join: {
        Bound b = bind(in, "join", {"d", "attribute"}, 0, args, kwargs, line);
        std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
        const std::string sep = b.has[0] ? to_str(b[0]) : std::string();
        std::string r;
        in.tick(items.size(), line);
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) r += sep;
            if (b.has[1] && !b[1].is_none()) append_str(r, attr_path(in, items[i], b[1], line));
            else append_str(r, items[i]);
            if (r.size() > in.lim.max_output_bytes) in.fail("join result too large", line);
        }
        return str_value(in, std::move(r), line);
    }
    case FilterId::List:
        bind(in, "list", {}, 0, args, kwargs, line);
        return in.make_list(in.iterate(iterable_or_fail(in, v, line), line), line);
    case FilterId::Lower:
        bind(in, "lower", {}, 0, args, kwargs, line);
        return str_value(in, str_lower(soft_str(v)), line, v.safe());
    case FilterId::Upper:
        bind(in, "upper", {}, 0, args, kwargs, line);
        return str_value(in, str_upper(soft_str(v)), line, v.safe());
    case FilterId::Map: return map_filter(in, v, args, kwargs, line);
    case FilterId::Max: return min_max(in, v, args, kwargs, true, line);
    case FilterId::Min: return min_max(in, v, args, kwargs, false, line);
    case FilterId::Select: return select_reject(in, v, args, kwargs, false, true, line);
    case FilterId::Reject: return select_reject(in, v, args, kwargs, false, false, line);
    case FilterId::Selectattr: return select_reject(in, v, args, kwargs, true, true, line);
    case FilterId::Rejectattr: return select_reject(in, v, args, kwargs, true, false, line);
    case FilterId::Replace: {
        Bound b = bind(in, "replace", {"old", "new", "count"}, 2, args, kwargs, line);
        const int64_t count = b.has[2] && !b[2].is_none() ? int_arg(in, b[2], "count", line) : -1;
        const std::string s = soft_str(v), old = soft_str(b[0]), nw = soft_str(b[1]);
        in.tick(s.size() / 64 + 1, line);
        if (old.empty() ? nw.size() * (s.size() + 1) > in.lim.max_output_bytes
                        : nw.size() > old.size() && (s.size() / old.size() + 1) * (nw.size() - old.size()) > in.lim.max_output_bytes)
            in.fail("replace result too large", line);
        return str_value(in, str_replace(s, old, nw, count), line);
    }
    case FilterId::Reverse: {
        bind(in, "reverse", {}, 0, args, kwargs, line);
        if (v.is_str()) {
            std::vector<uint32_t> cps = code_points(v.as_str());
            std::string r;
            for (auto it = cps.rbegin(); it != cps.rend(); ++it) utf8_append(r, *it);
            return str_value(in, std::move(r), line, v.safe());
        }
        std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
        std::reverse(items.begin(), items.end());
        // reversed(seq) is an iterator; a generator goes through list() and stays a list
        return in.make_list(std::move(items), line, v.is_list() && v.is_generator() ? FList : FGenerator);
    }
    case FilterId::Round: {
        Bound b = bind(in, "round", {"precision", "method"}, 0, args, kwargs, line);
        const int64_t prec = b.has[0] ? int_arg(in, b[0], "precision", line) : 0;
        const std::string meth = b.has[1] ? to_str(b[1]) : "common";
        if (meth != "common" && meth != "ceil" && meth != "floor")
            in.fail("FilterArgumentError: method must be common, ceil or floor", line);
        if (v.is_undefined()) in.fail_undefined(v, line);
        if (!v.is_number()) in.fail(std::string("TypeError: type ") + type_name(v) + " doesn't define __round__ method", line);
        if (meth == "common") {
            if (v.is_int_like() && prec >= 0) return Value::integer(v.as_int());
            if (v.is_int_like()) in.fail("unsupported: round() of an int to negative digits", line);
            return Value::number(py_round(v.as_float(), prec));
        }
        if (prec < -308 || prec > 308) in.fail("unsupported: round() precision out of range", line);
        const double p = std::pow(10.0, static_cast<double>(prec));
        const double x = v.as_float() * p;
        const double r = meth == "ceil" ? std::ceil(x) : std::floor(x);
        return Value::number(r / p);
    }
    case FilterId::Safe:
        bind(in, "safe", {}, 0, args, kwargs, line);
        if (v.is_str()) return v.with_safe(true);
        return str_value(in, soft_str(v), line, true);
    case FilterId::Sort: {
        Bound b = bind(in, "sort", {"reverse", "case_sensitive", "attribute"}, 0, args, kwargs, line);
        std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
        const bool cs = b.has[1] && truthy(b[1]);
        std::vector<Value> keys;   // make_multi_attrgetter: every key is a list
        keys.reserve(items.size());
        for (const auto &it : items) {
            Value k = sort_key(in, it, b.has[2] ? &b[2] : nullptr, cs, line);
            keys.push_back(k.is_list() && k.flavor() == FList && b.has[2] && b[2].is_str() &&
                                   b[2].as_str().find(',') != std::string::npos
                               ? k
                               : Value::list({k}));
        }
        return in.make_list(sorted(in, std::move(items), keys, sort_reverse(in, b, 0, line), line), line);
    }
    case FilterId::String:
        bind(in, "string", {}, 0, args, kwargs, line);
        if (v.is_str()) return v;
        return str_value(in, soft_str(v), line);
    case FilterId::Sum: {
        Bound b = bind(in, "sum", {"attribute", "start"}, 0, args, kwargs, line);
        std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
        Value acc = b.has[1] ? b[1] : Value::integer(0);
        for (const auto &it : items) {
            if (acc.is_str()) in.fail("TypeError: sum() can't sum strings [use ''.join(seq) instead]", line);
            acc = in.binary(BinOp::Add, acc, b.has[0] && !b[0].is_none() ? attr_path(in, it, b[0], line) : it, line);
        }
        return acc;
    }
    case FilterId::Title:
        bind(in, "title", {}, 0, args, kwargs, line);
        return str_value(in, title_filter(soft_str(v)), line, v.safe());
    case FilterId::Tojson: {
        Bound b = bind(in, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, args, kwargs, line);
        std::string indent;
        JsonOptions o = json_options(in, b, indent, line);
        if (v.is_undefined()) in.fail("TypeError: Object of type Undefined is not JSON serializable", line);
        try {
            return str_value(in, to_json(in, v, o, line), line);
        } catch (const Error &e) {
            in.fail(std::string("TypeError: ") + e.what(), line);
        }
    }
    case FilterId::Trim: {
        Bound b = bind(in, "trim", {"chars"}, 0, args, kwargs, line);
        const Value *chars = b.has[0] && !b[0].is_none() ? &b[0] : nullptr;
        if (chars && !chars->is_str()) in.fail("TypeError: strip arg must be None or str", line);
        return str_value(in, str_strip(soft_str(v), chars, true, true), line, v.safe());
    }
    case FilterId::Truncate: {
        Bound b = bind(in, "truncate", {"length", "killwords", "end", "leeway"}, 0, args, kwargs, line);
        const int64_t length = b.has[0] ? int_arg(in, b[0], "length", line) : 255;
        const std::string end = b.has[2] ? soft_str(b[2]) : "...";
        const int64_t leeway = b.has[3] && !b[3].is_none() ? int_arg(in, b[3], "leeway", line) : 5;
        const int64_t end_len = cp_index(end, end.size());
        if (length < end_len) in.fail("AssertionError: expected length >= " + std::to_string(end_len), line);
        if (leeway < 0) in.fail("AssertionError: expected leeway >= 0", line);
        if (v.is_undefined()) return v;
        if (!v.is_str()) in.fail(std::string("TypeError: object of type '") + type_name(v) + "' has no len()", line);
        const std::string &s = v.as_str();
        const int64_t n = cp_index(s, s.size());
        if (n <= length + leeway) return v;
        std::vector<uint32_t> cps = code_points(s);
        std::string head;
        for (int64_t i = 0; i < length - end_len; ++i) utf8_append(head, cps[static_cast<size_t>(i)]);
        if (!(b.has[1] && truthy(b[1]))) {
            const size_t sp = head.rfind(' ');
            if (sp != std::string::npos) head.resize(sp);
        }
        return str_value(in, head + end, line);
    }
    case FilterId::Unique: {
        Bound b = bind(in, "unique", {"case_sensitive", "attribute"}, 0, args, kwargs, line);
        std::vector<Value> items = in.iterate(iterable_or_fail(in, v, line), line);
        const bool cs = b.has[0] && truthy(b[0]);
        std::vector<Value> seen, out;
        in.tick(items.size() * (items.size() / 8 + 1), line);
        for (const auto &it : items) {
            Value k = b.has[1] && !b[1].is_none() ? attr_path(in, it, b[1], line) : it;
            if (!cs) k = ignore_case(k);
            if (!hashable(k)) in.fail(std::string("TypeError: unhashable type: '") + type_name(k) + "'", line);
            bool dup = false;
            for (const auto &s : seen)
                if (equal(s, k)) { dup = true; break; }
            if (dup) continue;
            seen.push_back(k);
            out.push_back(it);
        }
        return in.make_list(std::move(out), line, FGenerator);
    }
    }
    in.fail("internal error: unknown filter", line);
}

// --- tests --------------------------------------------------------------------

bool apply_test_named(Interp &in, const std::string &name, const Value &v, Args &args, Kwargs &kwargs, int line) {
    std::string why;
    const int id = find_test(name, why);
    if (id < 0) in.fail("TemplateRuntimeError: " + why, line);
    return apply_test(in, static_cast<TestId>(id), v, args, kwargs, line);
}

bool apply_test(Interp &in, TestId id, const Value &v, Args &args, Kwargs &kwargs, int line) {
    auto other = [&](const char *fn) { return bind(in, fn, {"other"}, 1, args, kwargs, line)[0]; };
    switch (id) {
    case TestId::Boolean: bind(in, "boolean", {}, 0, args, kwargs, line); return v.kind() == Kind::Bool;
    case TestId::Callable:
        bind(in, "callable", {}, 0, args, kwargs, line);
        return v.kind() == Kind::Callable || v.is_undefined();
    case TestId::Defined: bind(in, "defined", {}, 0, args, kwargs, line); return !v.is_undefined();
    case TestId::Undefined: bind(in, "undefined", {}, 0, args, kwargs, line); return v.is_undefined();
    case TestId::Divisibleby: {
        Value n = bind(in, "divisibleby", {"num"}, 1, args, kwargs, line)[0];
        Value r = in.binary(BinOp::Mod, v, n, line);
        return equal(r, Value::integer(0));
    }
    case TestId::Eq: return equal(v, other("eq"));
    case TestId::Ne: return !equal(v, other("ne"));
    case TestId::Lt: return in.less(v, other("lt"), line);
    case TestId::Gt: return in.less(other("gt"), v, line);
    case TestId::Le: { Value o = other("le"); return in.less(v, o, line) || equal(v, o); }
    case TestId::Ge: { Value o = other("ge"); return in.less(o, v, line) || equal(v, o); }
    case TestId::Escaped: bind(in, "escaped", {}, 0, args, kwargs, line); return v.is_str() && v.safe();
    case TestId::Even:
    case TestId::Odd: {
        bind(in, "odd", {}, 0, args, kwargs, line);
        Value r = in.binary(BinOp::Mod, v, Value::integer(2), line);
        return equal(r, Value::integer(id == TestId::Odd ? 1 : 0));
    }
    case TestId::False: bind(in, "false", {}, 0, args, kwargs, line); return v.kind() == Kind::Bool && !v.as_bool();
    case TestId::True: bind(in, "true", {}, 0, args, kwargs, line); return v.kind() == Kind::Bool && v.as_bool();
    case TestId::Filter:
    case TestId::Test: {
        bind(in, "filter", {}, 0, args, kwargs, line);
        if (!v.is_str()) return false;
        std::string why;
        return (id == TestId::Filter ? find_filter(v.as_str(), why) : find_test(v.as_str(), why)) >= 0;
    }
    case TestId::Float: bind(in, "float", {}, 0, args, kwargs, line); return v.kind() == Kind::Float;
    case TestId::Integer: bind(in, "integer", {}, 0, args, kwargs, line); return v.kind() == Kind::Int;
    case TestId::Number: bind(in, "number", {}, 0, args, kwargs, line); return v.is_number();
    case TestId::In: {
        Value seq = bind(in, "in", {"seq"}, 1, args, kwargs, line)[0];
        return in.contains(seq, v, line);
    }
    case TestId::Iterable:
        bind(in, "iterable", {}, 0, args, kwargs, line);
        return v.is_undefined() || v.is_str() || v.is_list() || v.kind() == Kind::Dict;
    case TestId::Lower:
    case TestId::Upper: {
        bind(in, "lower", {}, 0, args, kwargs, line);
        Value s = Value::str(soft_str(v));
        Args a;
        Kwargs k;
        return truthy(call_method(in, s, id == TestId::Lower ? "islower" : "isupper", a, k, line));
    }
    case TestId::Mapping: bind(in, "mapping", {}, 0, args, kwargs, line); return v.kind() == Kind::Dict;
    case TestId::None: bind(in, "none", {}, 0, args, kwargs, line); return v.is_none();
    case TestId::Sameas: {
        Value o = bind(in, "sameas", {"other"}, 1, args, kwargs, line)[0];
        if (v.kind() != o.kind()) return false;
        switch (v.kind()) {
        case Kind::None: return true;
        case Kind::Undefined: return v.obj() == o.obj();
        case Kind::Bool: return v.as_bool() == o.as_bool();
        case Kind::Int: return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;   // CPython's small ints
        case Kind::Float: return false;
        default: return v.obj() == o.obj();
        }
    }
    case TestId::Sequence:
        bind(in, "sequence", {}, 0, args, kwargs, line);
        return v.is_undefined() || v.is_str() || v.kind() == Kind::Dict ||
               (v.is_list() && (v.flavor() <= 1 || v.flavor() == FRange));
    case TestId::String: bind(in, "string", {}, 0, args, kwargs, line); return v.is_str();
    }
    return false;
}

// --- globals --------------------------------------------------------------------

Value call_global(Interp &in, Global g, Args &args, Kwargs &kwargs, int line) {
    switch (g) {
    case Global::Range: {
        if (!kwargs.empty()) in.fail("TypeError: range() takes no keyword arguments", line);
        if (args.empty() || args.size() > 3) in.fail("TypeError: range expected 1 to 3 arguments", line);
        int64_t a[3] = {0, 0, 1};
        for (size_t i = 0; i < args.size(); ++i) {
            if (args[i].is_undefined()) in.fail_undefined(args[i], line);
            a[args.size() == 1 ? 1 : i] = int_arg(in, args[i], "range() argument", line);
        }
        if (a[2] == 0) in.fail("ValueError: range() arg 3 must not be zero", line);
        const long double n = a[2] > 0 ? std::ceil(static_cast<long double>(a[1] - static_cast<long double>(a[0])) / a[2])
                                       : std::ceil(static_cast<long double>(a[0] - static_cast<long double>(a[1])) / -a[2]);
        if (n > 100000)   // jinja2.sandbox.MAX_RANGE
            in.fail("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).", line);
        std::vector<Value> items;
        for (int64_t i = a[0]; a[2] > 0 ? i < a[1] : i > a[1]; i += a[2]) items.push_back(Value::integer(i));
        Value r = in.make_list(std::move(items), line, FRange);
        std::copy(a, a + 3, r.mutable_list().range);
        return r;
    }
    case Global::Dict: {
        auto d = std::make_shared<DictObj>();
        if (args.size() > 1) in.fail("TypeError: dict expected at most 1 argument", line);
        if (args.size() == 1) {
            const Value &src = args[0];
            if (src.is_undefined()) in.fail_undefined(src, line);   // dict() reads src.keys
            if (src.kind() == Kind::Dict) {
                for (const auto &kv : src.dict_obj().items) d->set(kv.first, kv.second);
            } else {
                for (const Value &pair : in.iterate(iterable_or_fail(in, src, line), line)) {
                    std::vector<Value> kv = in.iterate(iterable_or_fail(in, pair, line), line);
                    if (kv.size() != 2) in.fail("ValueError: dictionary update sequence element has wrong length", line);
                    if (!hashable(kv[0])) in.fail("TypeError: unhashable type", line);
                    d->set(kv[0], kv[1]);
                }
            }
        }
        for (auto &kv : kwargs) d->set(Value::str(kv.first), kv.second);
        in.charge(d->items.size() * 2 * sizeof(Value), line);
        return Value::dict(std::move(d));
    }
    case Global::Namespace: {
        auto ns = std::make_shared<NamespaceObj>();
        in.namespaces.push_back(ns);
        auto put = [&](const std::string &k, const Value &v) {
            if (!k.empty() && k[0] == '_')
                in.fail("SecurityError: Chat templates cannot store underscore-prefixed attributes on a namespace, "
                        "but got '" + k + "'", line);
            if (Value *p = ns->find(k)) *p = v;
            else ns->attrs.emplace_back(k, v);
        };
        if (args.size() > 1) in.fail("TypeError: namespace expected at most 1 argument", line);
        if (args.size() == 1) {
            if (args[0].kind() != Kind::Dict) in.fail("unsupported: namespace() from a non-dict argument", line);
            for (const auto &kv : args[0].dict_obj().items) {
                if (!kv.first.is_str()) in.fail("TypeError: namespace keywords must be strings", line);
                put(kv.first.as_str(), kv.second);
            }
        }
        for (auto &kv : kwargs) put(kv.first, kv.second);
        return Value::ns(std::move(ns));
    }
    case Global::RaiseException: {
        Bound b = bind(in, "raise_exception", {"message"}, 1, args, kwargs, line);
        in.fail("TemplateError: " + to_str(b[0]), line);
    }
    case Global::StrftimeNow: {
        Bound b = bind(in, "strftime_now", {"format"}, 1, args, kwargs, line);
        if (!b[0].is_str()) in.fail("TypeError: strftime() argument 1 must be str", line);
        // datetime.strftime: %f (microseconds, 0 here), %z / %Z (naive: empty) are Python's own
        std::string fmt;
        const std::string &f = b[0].as_str();
        for (size_t i = 0; i < f.size(); ++i) {
            if (f[i] == '%' && i + 1 < f.size()) {
                const char c = f[i + 1];
                if (c == 'f') { fmt += "000000"; ++i; continue; }
                if (c == 'z' || c == 'Z') { ++i; continue; }
                fmt += f[i];
                fmt += f[++i];
                continue;
            }
            fmt += f[i];
        }
        if (fmt.size() > 1024) in.fail("unsupported: strftime format longer than 1024 bytes", line);
        if (fmt.empty()) return Value::str("");
        std::string buf(fmt.size() * 16 + 64, '\0');
        const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &in.now);
        buf.resize(n);
        if (!utf8_valid(buf)) in.fail("strftime produced invalid UTF-8", line);
        return str_value(in, std::move(buf), line);
    }
    default: break;
    }
    in.fail("internal error: unknown global", line);
}

}  // namespace vlm::jinja
