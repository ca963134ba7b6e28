// value.h: the values a chat template computes with, modelled on the Python
// objects jinja2 hands around when transformers renders a template: None, bool,
// int, float, str (with jinja2's Markup bit), list/tuple, dict (insertion
// ordered), jinja2's Undefined and Namespace, and callables (macros, globals,
// bound str/list/dict methods, loop helpers). Plus the Python formatting the
// output depends on: str()/repr(), float repr, json.dumps as transformers
// configures it.
//
// Not modelled: Python's arbitrary-precision ints (ours are int64; overflow is
// an error), sets, bytes, and object identity beyond what `is sameas` needs.
// Values are immutable except Namespace (ImmutableSandboxedEnvironment forbids
// list.append, dict.update, ...), so copies share their payload.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vlm::jinja {

class Value;
struct Interp;

// A failed render or load: the message and the template line (0: unknown).
struct Error : std::runtime_error {
    int line;
    Error(const std::string &msg, int line_ = 0) : std::runtime_error(msg), line(line_) {}
};

enum class Kind : uint8_t {
    Undefined,   // jinja2.Undefined: prints "", falsy, iterates empty, fails on use
    None,
    Bool,
    Int,
    Float,
    Str,
    List,        // list or tuple (List::tuple)
    Dict,
    Namespace,
    Callable,
};

struct Object {
    virtual ~Object() = default;
};

// Values nest (a list in a list in a namespace ...) as deep as a template
// makes them. Containers release their children through a per-thread queue
// instead of recursively, so freeing a deep structure cannot overflow the
// stack; formatting and comparison stop at kMaxValueNesting levels (CPython's
// own recursion limit stops them at about 1000).
constexpr int kMaxValueNesting = 900;
void release_children(std::vector<Value> &children);

struct StrObj final : Object {
    std::string s;   // valid UTF-8
    bool ascii;      // all bytes < 0x80: code point index == byte index
    explicit StrObj(std::string v);
};

// A Python sequence; `flavor` says which (interp.h Flavor): list, tuple, a
// generator (what jinja2's map/select/... filters return: always truthy, no
// len(), consumed by iteration; `pos` counts consumed items) or a dict view.
struct ListObj final : Object {
    std::vector<Value> items;
    uint8_t flavor = 0;
    size_t pos = 0;
    int64_t range[3] = {0, 0, 1};   // a range object's start, stop, step (for repr)
    ~ListObj() override;
};

struct DictObj final : Object {
    std::vector<std::pair<Value, Value>> items;   // insertion order, unique keys
    const Value *find(const Value &key) const;
    const Value *find(std::string_view key) const;
    void set(Value key, Value v);                 // construction only
    ~DictObj() override;
};

struct NamespaceObj final : Object {
    std::vector<std::pair<std::string, Value>> attrs;
    Value *find(std::string_view name);
    ~NamespaceObj() override;
};

// Why a value is undefined, for the error raised when it is used.
struct UndefObj final : Object {
    std::string hint;       // "'x' is undefined", "'dict object' has no attribute 'y'"
    bool unsafe = false;    // a sandbox-blocked attribute: using it is a SecurityError
};

// Anything a template can call: see interp.cpp for the kinds.
struct CallableObj : Object {
    virtual std::string name() const = 0;
    virtual std::string repr() const { return "<function " + name() + ">"; }
    virtual Value call(Interp &in, std::vector<Value> &args,
                       std::vector<std::pair<std::string, Value>> &kwargs, int line) const = 0;
};

class Value {
public:
    Value() = default;   // Undefined without a hint
    static Value none() { Value v; v.kind_ = Kind::None; return v; }
    static Value boolean(bool b) { Value v; v.kind_ = Kind::Bool; v.i_ = b; return v; }
    static Value integer(int64_t i) { Value v; v.kind_ = Kind::Int; v.i_ = i; return v; }
    static Value number(double f) { Value v; v.kind_ = Kind::Float; v.f_ = f; return v; }
    static Value str(std::string s, bool safe = false);
    static Value str(std::shared_ptr<StrObj> s, bool safe = false);
    static Value list(std::vector<Value> items, uint8_t flavor = 0);
    static Value dict(std::shared_ptr<DictObj> d);
    static Value ns(std::shared_ptr<NamespaceObj> n);
    static Value callable(std::shared_ptr<CallableObj> c);
    static Value undefined(std::string hint, bool unsafe = false);

    Kind kind() const { return kind_; }
    bool is_undefined() const { return kind_ == Kind::Undefined; }
    bool is_none() const { return kind_ == Kind::None; }
    bool is_str() const { return kind_ == Kind::Str; }
    bool is_list() const { return kind_ == Kind::List; }
    bool is_dict() const { return kind_ == Kind::Dict; }
    // Python int includes bool; "number" includes both and float.
    bool is_int_like() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }
    bool is_number() const { return is_int_like() || kind_ == Kind::Float; }
    bool safe() const { return safe_; }   // jinja2 Markup

    bool as_bool() const { return i_ != 0; }
    int64_t as_int() const { return i_; }           // Int or Bool
    double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(i_); }
    const std::string &as_str() const { return static_cast<const StrObj *>(obj_.get())->s; }
    const StrObj &str_obj() const { return *static_cast<const StrObj *>(obj_.get()); }
    const std::shared_ptr<Object> &obj() const { return obj_; }
    const ListObj &list_obj() const { return *static_cast<const ListObj *>(obj_.get()); }
    const std::vector<Value> &items() const { return list_obj().items; }
    uint8_t flavor() const { return list_obj().flavor; }
    bool is_tuple() const { return list_obj().flavor == 1; }
    bool is_generator() const { return list_obj().flavor == 2; }
    ListObj &mutable_list() const { return *static_cast<ListObj *>(obj_.get()); }
    const DictObj &dict_obj() const { return *static_cast<const DictObj *>(obj_.get()); }
    NamespaceObj &ns_obj() const { return *static_cast<NamespaceObj *>(obj_.get()); }
    const CallableObj &callable_obj() const { return *static_cast<const CallableObj *>(obj_.get()); }
    const UndefObj *undef_obj() const { return static_cast<const UndefObj *>(obj_.get()); }

    Value with_safe(bool s) const { Value v = *this; v.safe_ = s; return v; }

private:
    Kind kind_ = Kind::Undefined;
    bool safe_ = false;
    union {
        int64_t i_ = 0;
        double f_;
    };
    std::shared_ptr<Object> obj_;
};

// The Python type name used in error messages ("str", "list", "dict", ...).
const char *type_name(const Value &v);

// Python truthiness.
bool truthy(const Value &v);

// Python ==, with int/float/bool numeric equality; Undefined equals Undefined.
bool equal(const Value &a, const Value &b, int depth = 0);

// Python's str() and repr(); str(Undefined) is "". A repr longer than
// repr_limit() bytes or nested deeper than kMaxValueNesting throws Error.
void append_str(std::string &out, const Value &v);
std::string to_str(const Value &v);
void append_repr(std::string &out, const Value &v, int depth = 0);
// The byte limit of one repr / json.dumps result on this thread (the
// interpreter sets it to Limits::max_output_bytes while rendering).
size_t &repr_limit();

// float.__repr__ (shortest round-trip digits, Python's fixed/exponent switch).
void append_float_repr(std::string &out, double d);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers'
// tojson filter calls it. indent: nullptr for none, else the indent string.
struct JsonOptions {
    bool ensure_ascii = false;
    const std::string *indent = nullptr;
    std::string item_sep;   // defaults: ", " without indent, "," with
    std::string key_sep = ": ";
    bool sort_keys = false;
};
void append_json(std::string &out, const Value &v, const JsonOptions &opt, int depth = 0);

// Python str.isspace() for one code point.
bool py_isspace(uint32_t cp);

// UTF-8 through util/utf8.h: decode the code point at s[i] (advancing i; an
// ill-formed sequence gives U+FFFD), the number of code points, validity.
uint32_t utf8_next(std::string_view s, size_t &i);
void utf8_append(std::string &out, uint32_t cp);
size_t utf8_length(const StrObj &s);
bool utf8_valid(std::string_view s);

}  // namespace vlm::jinja
