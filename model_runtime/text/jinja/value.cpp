// value.cpp: construction, truthiness, equality and the Python formatting of
// values (str/repr, float repr, json.dumps). Every rule here is CPython's or
// jinja2's; the comments name the one followed.
#include "text/jinja/value.h"
#include "util/utf8.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace vlm::jinja {

namespace {

bool all_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

const char HEX[] = "0123456789abcdef";

void append_hex(std::string &out, uint32_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) out += HEX[(v >> (4 * i)) & 15];
}

// Py_UNICODE_ISPRINTABLE for code points >= 0x80, from Unicode categories Zs
// (except space), Zl, Zp, Cc, Cf, Co, Cs and the noncharacters. Unassigned code
// points (Cn) are not tabulated: CPython escapes them in repr() and we do not.
bool py_isprintable_nonascii(uint32_t c) {
    static const uint32_t ranges[][2] = {
        {0x80, 0xA0},     {0xAD, 0xAD},     {0x600, 0x605},   {0x61C, 0x61C},
        {0x6DD, 0x6DD},   {0x70F, 0x70F},   {0x890, 0x891},   {0x8E2, 0x8E2},
        {0x1680, 0x1680}, {0x180E, 0x180E}, {0x2000, 0x200F}, {0x2028, 0x202F},
        {0x205F, 0x2064}, {0x2066, 0x206F}, {0x3000, 0x3000}, {0xD800, 0xF8FF},
        {0xFDD0, 0xFDEF}, {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB}, {0xFFFE, 0xFFFF},
        {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
        {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
        {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
    };
    if ((c & 0xFFFE) == 0xFFFE) return false;   // U+xFFFE / U+xFFFF in every plane
    for (const auto &r : ranges)
        if (c >= r[0] && c <= r[1]) return false;
    return true;
}

// repr(str): CPython unicode_repr.
void append_str_repr(std::string &out, std::string_view s) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    out += quote;
    size_t i = 0;
    while (i < s.size()) {
        const size_t start = i;
        const uint32_t c = utf8_next(s, i);
        if (c == static_cast<uint32_t>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7F) {
            out += "\\x";
            append_hex(out, c, 2);
        } else if (c < 0x7F || py_isprintable_nonascii(c)) {
            out.append(s.data() + start, i - start);
        } else if (c <= 0xFF) {
            out += "\\x";
            append_hex(out, c, 2);
        } else if (c <= 0xFFFF) {
            out += "\\u";
            append_hex(out, c, 4);
        } else {
            out += "\\U";
            append_hex(out, c, 8);
        }
    }
    out += quote;
}

// json.encoder: ESCAPE (ensure_ascii=False) or ESCAPE_ASCII (True).
void append_json_str(std::string &out, std::string_view s, bool ensure_ascii) {
    out += '"';
    size_t i = 0;
    while (i < s.size()) {
        const size_t start = i;
        const uint32_t c = utf8_next(s, i);
        switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        case '\b': out += "\\b"; continue;
        case '\f': out += "\\f"; continue;
        default: break;
        }
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
            if (c >= 0x10000) {
                const uint32_t v = c - 0x10000;
                out += "\\u";
                append_hex(out, 0xD800 | (v >> 10), 4);
                out += "\\u";
                append_hex(out, 0xDC00 | (v & 0x3FF), 4);
            } else {
                out += "\\u";
                append_hex(out, c, 4);
            }
        } else {
            out.append(s.data() + start, i - start);
        }
    }
    out += '"';
}

// float.__repr__ for the JSON encoder, which spells the non-finite values
// NaN / Infinity / -Infinity (allow_nan=True).
void append_json_float(std::string &out, double d) {
    if (std::isnan(d)) out += "NaN";
    else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
    else append_float_repr(out, d);
}

// A dict key as json.dumps writes it, or false when the type is not allowed.
bool json_key(const Value &k, std::string &key) {
    switch (k.kind()) {
    case Kind::Str: key = k.as_str(); return true;
    case Kind::Bool: key = k.as_bool() ? "true" : "false"; return true;
    case Kind::Int: key = std::to_string(k.as_int()); return true;
    case Kind::Float: key.clear(); append_json_float(key, k.as_float()); return true;
    case Kind::None: key = "null"; return true;
    default: return false;
    }
}

void append_newline_indent(std::string &out, const JsonOptions &opt, int depth) {
    out += '\n';
    for (int i = 0; i < depth; ++i) out += *opt.indent;
}

thread_local bool t_releasing = false;
thread_local std::vector<Value> *t_pending = nullptr;

}  // namespace

size_t &repr_limit() {
    thread_local size_t limit = SIZE_MAX;
    return limit;
}

// The first container to die on a thread drains, iteratively, everything its
// children release; containers dying meanwhile only hand their children over.
void release_children(std::vector<Value> &children) {
    if (t_releasing) {
        for (auto &c : children)
            if (c.obj()) t_pending->push_back(std::move(c));
        children.clear();
        return;
    }
    std::vector<Value> pending;
    for (auto &c : children)
        if (c.obj()) pending.push_back(std::move(c));
    children.clear();
    t_releasing = true;
    t_pending = &pending;
    while (!pending.empty()) {
        Value v = std::move(pending.back());
        pending.pop_back();
        // v's destructor may run ~ListObj / ~DictObj / ~NamespaceObj, which append to `pending`
    }
    t_releasing = false;
    t_pending = nullptr;
}

ListObj::~ListObj() { release_children(items); }

DictObj::~DictObj() {
    std::vector<Value> children;
    children.reserve(items.size() * 2);
    for (auto &kv : items) {
        children.push_back(std::move(kv.first));
        children.push_back(std::move(kv.second));
    }
    items.clear();
    release_children(children);
}

NamespaceObj::~NamespaceObj() {
    std::vector<Value> children;
    for (auto &kv : attrs) children.push_back(std::move(kv.second));
    attrs.clear();
    release_children(children);
}

StrObj::StrObj(std::string v) : s(std::move(v)), ascii(all_ascii(s)) {}

const Value *DictObj::find(const Value &key) const {
    if (key.is_str()) return find(std::string_view(key.as_str()));
    for (const auto &kv : items)
        if (equal(kv.first, key)) return &kv.second;
    return nullptr;
}

const Value *DictObj::find(std::string_view key) const {
    for (const auto &kv : items)
        if (kv.first.is_str() && kv.first.as_str() == key) return &kv.second;
    return nullptr;
}

void DictObj::set(Value key, Value v) {
    for (auto &kv : items)
        if (equal(kv.first, key)) {
            kv.second = std::move(v);   // a repeated key keeps its first position, like Python
            return;
        }
    items.emplace_back(std::move(key), std::move(v));
}

Value *NamespaceObj::find(std::string_view name) {
    for (auto &kv : attrs)
        if (kv.first == name) return &kv.second;
    return nullptr;
}

Value Value::str(std::string s, bool safe) {
    return str(std::make_shared<StrObj>(std::move(s)), safe);
}

Value Value::str(std::shared_ptr<StrObj> s, bool safe) {
    Value v;
    v.kind_ = Kind::Str;
    v.safe_ = safe;
    v.obj_ = std::move(s);
    return v;
}

Value Value::list(std::vector<Value> items, uint8_t flavor) {
    auto l = std::make_shared<ListObj>();
    l->items = std::move(items);
    l->flavor = flavor;
    Value v;
    v.kind_ = Kind::List;
    v.obj_ = std::move(l);
    return v;
}

Value Value::dict(std::shared_ptr<DictObj> d) {
    Value v;
    v.kind_ = Kind::Dict;
    v.obj_ = std::move(d);
    return v;
}

Value Value::ns(std::shared_ptr<NamespaceObj> n) {
    Value v;
    v.kind_ = Kind::Namespace;
    v.obj_ = std::move(n);
    return v;
}

Value Value::callable(std::shared_ptr<CallableObj> c) {
    Value v;
    v.kind_ = Kind::Callable;
    v.obj_ = std::move(c);
    return v;
}

Value Value::undefined(std::string hint, bool unsafe) {
    auto u = std::make_shared<UndefObj>();
    u->hint = std::move(hint);
    u->unsafe = unsafe;
    Value v;
    v.obj_ = std::move(u);
    return v;
}

const char *type_name(const Value &v) {
    switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::List: {
        static const char *const names[] = {"list", "tuple", "generator", "dict_items", "dict_keys", "dict_values", "range"};
        return names[v.flavor() < 7 ? v.flavor() : 0];
    }
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "Namespace";
    case Kind::Callable: return "function";
    }
    return "object";
}

bool truthy(const Value &v) {
    switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool:
    case Kind::Int: return v.as_int() != 0;
    case Kind::Float: return v.as_float() != 0.0;
    case Kind::Str: return !v.as_str().empty();
    case Kind::List: return v.is_generator() || !v.items().empty();
    case Kind::Dict: return !v.dict_obj().items.empty();
    case Kind::Namespace:
    case Kind::Callable: return true;
    }
    return false;
}

namespace {

// Exact int64 == double, as Python compares int and float.
bool int_eq_float(int64_t i, double d) {
    if (!std::isfinite(d) || d != std::floor(d)) return false;
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
    return static_cast<int64_t>(d) == i;
}

}  // namespace

bool equal(const Value &a, const Value &b, int depth) {
    if (depth > kMaxValueNesting) throw Error("RecursionError: values nested too deeply to compare");
    if (a.is_number() && b.is_number()) {
        if (a.kind() != Kind::Float && b.kind() != Kind::Float) return a.as_int() == b.as_int();
        if (a.kind() == Kind::Float && b.kind() == Kind::Float) return a.as_float() == b.as_float();
        return a.kind() == Kind::Float ? int_eq_float(b.as_int(), a.as_float())
                                       : int_eq_float(a.as_int(), b.as_float());
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Str: return a.obj() == b.obj() || a.as_str() == b.as_str();
    case Kind::List: {
        if (a.flavor() != b.flavor()) return false;
        // generators and dict_values compare by identity, dict_items / dict_keys as sets
        if (a.flavor() == 2 || a.flavor() == 5) return a.obj() == b.obj();
        const auto &x = a.items(), &y = b.items();
        if (x.size() != y.size()) return false;
        if (a.flavor() == 3 || a.flavor() == 4) {
            for (const auto &e : x) {
                bool found = false;
                for (const auto &f : y)
                    if (equal(e, f, depth + 1)) { found = true; break; }
                if (!found) return false;
            }
            return true;
        }
        for (size_t i = 0; i < x.size(); ++i)
            if (!equal(x[i], y[i], depth + 1)) return false;
        return true;
    }
    case Kind::Dict: {
        const auto &x = a.dict_obj().items;
        if (x.size() != b.dict_obj().items.size()) return false;
        for (const auto &kv : x) {
            const Value *o = b.dict_obj().find(kv.first);
            if (!o || !equal(kv.second, *o, depth + 1)) return false;
        }
        return true;
    }
    default: return a.obj() == b.obj();
    }
}

void append_float_repr(std::string &out, double d) {
    if (std::isnan(d)) { out += "nan"; return; }
    if (std::isinf(d)) { out += d > 0 ? "inf" : "-inf"; return; }
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));   // [-]d[.ddd]e(+|-)dd
    if (sci[0] == '-') {
        out += '-';
        sci.remove_prefix(1);
    }
    const size_t e = sci.find('e');
    std::string digits;
    for (char c : sci.substr(0, e))
        if (c != '.') digits += c;
    const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
    const int decpt = exp10 + 1;                  // value = 0.DIGITS * 10^decpt
    const int nd = static_cast<int>(digits.size());
    if (decpt <= -4 || decpt > 16) {              // PyOS_double_to_string, 'r'
        out += digits[0];
        if (nd > 1) {
            out += '.';
            out.append(digits, 1);
        }
        out += 'e';
        out += exp10 < 0 ? '-' : '+';
        const int ax = exp10 < 0 ? -exp10 : exp10;
        if (ax < 10) out += '0';
        out += std::to_string(ax);
    } else if (decpt <= 0) {
        out += "0.";
        out.append(static_cast<size_t>(-decpt), '0');
        out += digits;
    } else if (decpt >= nd) {
        out += digits;
        out.append(static_cast<size_t>(decpt - nd), '0');
        out += ".0";
    } else {
        out.append(digits, 0, static_cast<size_t>(decpt));
        out += '.';
        out.append(digits, static_cast<size_t>(decpt));
    }
}

void append_repr(std::string &out, const Value &v, int depth) {
    if (depth > kMaxValueNesting) throw Error("RecursionError: values nested too deeply to format");
    if (out.size() > repr_limit()) throw Error("a formatted value exceeds the size limit");
    switch (v.kind()) {
    case Kind::Undefined: out += "Undefined"; return;
    case Kind::None: out += "None"; return;
    case Kind::Bool: out += v.as_bool() ? "True" : "False"; return;
    case Kind::Int: out += std::to_string(v.as_int()); return;
    case Kind::Float: append_float_repr(out, v.as_float()); return;
    case Kind::Str:
        if (v.safe()) {   // Markup.__repr__
            out += "Markup(";
            append_str_repr(out, v.as_str());
            out += ')';
        } else {
            append_str_repr(out, v.as_str());
        }
        return;
    case Kind::List: {
        if (v.is_generator()) { out += "<generator object>"; return; }
        if (v.flavor() == 6) {
            const int64_t *r = v.list_obj().range;
            out += "range(" + std::to_string(r[0]) + ", " + std::to_string(r[1]);
            if (r[2] != 1) out += ", " + std::to_string(r[2]);
            out += ')';
            return;
        }
        const char *view = v.flavor() == 3 ? "dict_items(" : v.flavor() == 4 ? "dict_keys(" : v.flavor() == 5 ? "dict_values(" : nullptr;
        if (view) out += view;
        const auto &items = v.items();
        out += v.is_tuple() ? '(' : '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += ", ";
            append_repr(out, items[i], depth + 1);
        }
        if (v.is_tuple() && items.size() == 1) out += ',';
        out += v.is_tuple() ? ')' : ']';
        if (view) out += ')';
        return;
    }
    case Kind::Dict: {
        out += '{';
        bool first = true;
        for (const auto &kv : v.dict_obj().items) {
            if (!first) out += ", ";
            first = false;
            append_repr(out, kv.first, depth + 1);
            out += ": ";
            append_repr(out, kv.second, depth + 1);
        }
        out += '}';
        return;
    }
    case Kind::Namespace: {   // jinja2.utils.Namespace.__repr__
        out += "<Namespace {";
        bool first = true;
        for (const auto &kv : v.ns_obj().attrs) {
            if (!first) out += ", ";
            first = false;
            append_str_repr(out, kv.first);
            out += ": ";
            append_repr(out, kv.second, depth + 1);
        }
        out += "}>";
        return;
    }
    case Kind::Callable: out += v.callable_obj().repr(); return;
    }
}

void append_str(std::string &out, const Value &v) {
    switch (v.kind()) {
    case Kind::Undefined: return;
    case Kind::Str: out += v.as_str(); return;
    default: append_repr(out, v);
    }
}

std::string to_str(const Value &v) {
    if (v.is_str()) return v.as_str();
    std::string s;
    append_str(s, v);
    return s;
}

void append_json(std::string &out, const Value &v, const JsonOptions &opt, int depth) {
    if (depth > kMaxValueNesting) throw Error("RecursionError: values nested too deeply to serialize");
    if (out.size() > repr_limit()) throw Error("a JSON value exceeds the size limit");
    const std::string &item_sep =
        opt.item_sep.empty() ? (opt.indent ? std::string(",") : std::string(", ")) : opt.item_sep;
    switch (v.kind()) {
    case Kind::None: out += "null"; return;
    case Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Kind::Int: out += std::to_string(v.as_int()); return;
    case Kind::Float: append_json_float(out, v.as_float()); return;
    case Kind::Str: append_json_str(out, v.as_str(), opt.ensure_ascii); return;
    case Kind::List: {
        if (v.flavor() > 1)
            throw Error(std::string("tojson: Object of type ") + type_name(v) + " is not JSON serializable");
        const auto &items = v.items();
        if (items.empty()) { out += "[]"; return; }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += item_sep;
            if (opt.indent) append_newline_indent(out, opt, depth + 1);
            append_json(out, items[i], opt, depth + 1);
        }
        if (opt.indent) append_newline_indent(out, opt, depth);
        out += ']';
        return;
    }
    case Kind::Dict: {
        const auto &items = v.dict_obj().items;
        if (items.empty()) { out += "{}"; return; }
        std::vector<std::pair<std::string, const Value *>> kv;
        kv.reserve(items.size());
        for (const auto &p : items) {
            std::string key;
            if (!json_key(p.first, key))
                throw Error(std::string("tojson: keys must be str, int, float, bool or None, not ") +
                            type_name(p.first));
            kv.emplace_back(std::move(key), &p.second);
        }
        if (opt.sort_keys) {
            for (const auto &p : items)
                if (!p.first.is_str())
                    throw Error("tojson: sort_keys needs every key to be a str");
            std::stable_sort(kv.begin(), kv.end(),
                             [](const auto &a, const auto &b) { return a.first < b.first; });
        }
        out += '{';
        for (size_t i = 0; i < kv.size(); ++i) {
            if (i) out += item_sep;
            if (opt.indent) append_newline_indent(out, opt, depth + 1);
            append_json_str(out, kv[i].first, opt.ensure_ascii);
            out += opt.key_sep;
            append_json(out, *kv[i].second, opt, depth + 1);
        }
        if (opt.indent) append_newline_indent(out, opt, depth);
        out += '}';
        return;
    }
    default:
        throw Error(std::string("tojson: Object of type ") + type_name(v) + " is not JSON serializable");
    }
}

bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

uint32_t utf8_next(std::string_view s, size_t &i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; return c; }
    // the runtime's one decoder; ill-formed bytes (which validated input
    // never has) become U+FFFD rather than a guess
    const utf8::ScanResult r = utf8::scan(s, i);
    i += r.length;
    return r.kind == utf8::Scan::VALID ? r.codepoint : 0xFFFD;
}

void utf8_append(std::string &out, uint32_t cp) { utf8::append_codepoint(out, cp); }

size_t utf8_length(const StrObj &s) {
    if (s.ascii) return s.s.size();
    size_t n = 0;
    for (unsigned char c : s.s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

bool utf8_valid(std::string_view s) { return utf8::is_valid(s); }

}  // namespace vlm::jinja
