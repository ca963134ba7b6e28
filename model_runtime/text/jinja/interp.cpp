// interp.cpp: statement execution and expression evaluation, with Python's
// operator semantics and jinja2's sandboxed attribute / item lookup
// (SandboxedEnvironment.getattr / getitem).
#include "text/jinja/interp.h"

#include <cmath>
#include <limits>

namespace vlm::jinja {

namespace {

// Counts one nested evaluation; fails past Limits::max_depth.
struct DepthGuard {
    Interp &in;
    DepthGuard(Interp &i, int line) : in(i) {
        if (++in.depth > in.lim.max_depth)
            in.fail("template nesting exceeds " + std::to_string(in.lim.max_depth) +
                        " levels (deep recursion?)", line);
    }
    ~DepthGuard() { --in.depth; }
};

// A macro or a {% call %} body: the definition, plus the local variables it
// could see where it was defined (a copy: the scope may be gone when it runs).
struct MacroObj final : CallableObj {
    const Stmt *def;
    std::shared_ptr<Frame> scope;
    std::string nm;
    std::string name() const override { return nm; }
    std::string repr() const override { return "<Macro '" + nm + "'>"; }
    Value call(Interp &in, Args &args, Kwargs &kwargs, int line) const override {
        return in.call_macro(*def, scope, args, kwargs, nullptr, line);
    }
};

struct GlobalObj final : CallableObj {
    Global g;
    explicit GlobalObj(Global gg) : g(gg) {}
    std::string name() const override {
        static const char *const names[] = {"range", "dict", "namespace", "raise_exception", "strftime_now"};
        return names[static_cast<int>(g)];
    }
    Value call(Interp &in, Args &args, Kwargs &kwargs, int line) const override {
        return call_global(in, g, args, kwargs, line);
    }
};

bool checked_add(int64_t a, int64_t b, int64_t &r) { return !__builtin_add_overflow(a, b, &r); }
bool checked_sub(int64_t a, int64_t b, int64_t &r) { return !__builtin_sub_overflow(a, b, &r); }
bool checked_mul(int64_t a, int64_t b, int64_t &r) { return !__builtin_mul_overflow(a, b, &r); }

// Python // and % for ints (floor division, result has the divisor's sign).
int64_t floordiv(int64_t a, int64_t b) {
    const int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
int64_t pymod(int64_t a, int64_t b) {
    const int64_t m = a % b;
    return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
}
double pyfmod(double a, double b) {
    double m = std::fmod(a, b);
    if (m != 0) {
        if ((b < 0) != (m < 0)) m += b;
    } else {
        m = std::copysign(0.0, b);
    }
    return m;
}

// markupsafe.escape
std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
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

}  // namespace

void Interp::fail_undefined(const Value &u, int line) const {
    const UndefObj *o = u.undef_obj();
    if (o && o->unsafe) fail("SecurityError: " + o->hint, line);
    fail("UndefinedError: " + (o && !o->hint.empty() ? o->hint : std::string("value is undefined")), line);
}

void Interp::charge(size_t bytes, int line) {
    work_bytes += bytes;
    if (work_bytes > lim.max_work_bytes)
        fail("template built more than " + std::to_string(lim.max_work_bytes) + " bytes of values", line);
}

Value Interp::make_str(std::string s, int line, bool safe) {
    if (s.size() > lim.max_output_bytes)
        fail("a string of " + std::to_string(s.size()) + " bytes exceeds the " +
                 std::to_string(lim.max_output_bytes) + "-byte limit", line);
    charge(s.size(), line);
    return Value::str(std::move(s), safe);
}

Value Interp::make_list(std::vector<Value> items, int line, uint8_t flavor) {
    charge(items.size() * sizeof(Value), line);
    return Value::list(std::move(items), flavor);
}

void Interp::emit(std::string_view s, int line) {
    if (out->size() + s.size() > lim.max_output_bytes)
        fail("output exceeds " + std::to_string(lim.max_output_bytes) + " bytes", line);
    charge(s.size(), line);
    out->append(s);
}

Value Interp::lookup(int sym, int line) {
    for (Frame *f = frame; f; f = f->parent)
        if (Value *v = f->find(sym)) return *v;
    if (root_set[static_cast<size_t>(sym)]) return root[static_cast<size_t>(sym)];
    return Value::undefined("'" + prog.symbols[static_cast<size_t>(sym)] + "' is undefined");
}

void Interp::assign(int sym, Value v) {
    if (frame) {
        frame->set(sym, std::move(v));
    } else {
        root[static_cast<size_t>(sym)] = std::move(v);
        root_set[static_cast<size_t>(sym)] = 1;
    }
}

// A copy of every local variable visible now (innermost wins), for a macro
// defined here. Top-level variables stay live through `root`.
std::shared_ptr<Frame> Interp::snapshot() const {
    if (!frame) return nullptr;
    auto f = std::make_shared<Frame>();
    for (Frame *p = frame; p; p = p->parent)
        for (const auto &kv : p->vars)
            if (!f->find(kv.first)) f->vars.push_back(kv);
    return f;
}

// --- attribute and item lookup (SandboxedEnvironment.getattr / getitem) ------

Value Interp::getattr(const Value &obj, const std::string &name, int line) {
    switch (obj.kind()) {
    case Kind::Undefined: fail_undefined(obj, line);
    case Kind::Dict: {
        Value m = find_method(obj, name);
        if (!m.is_undefined() || m.obj()) return m;
        if (const Value *v = obj.dict_obj().find(std::string_view(name))) return *v;
        return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Kind::Namespace:
        if (Value *v = obj.ns_obj().find(name)) return *v;
        return Value::undefined("'Namespace' object has no attribute '" + name + "'");
    case Kind::Callable:
        if (is_loop(obj)) {
            if (name == "cycle" || name == "changed") return find_method(obj, name);
            return loop_attribute(*this, obj, name, line);
        }
        return Value::undefined("'function object' has no attribute '" + name + "'");
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float: {
        static const char *const num_attrs[] = {"real", "imag", "numerator", "denominator", "conjugate",
                                                "bit_length", "bit_count", "to_bytes", "as_integer_ratio",
                                                "is_integer", "hex"};
        for (const char *a : num_attrs)
            if (name == a) fail("unsupported: the number attribute ." + name, line);
        return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'");
    }
    default: {
        Value m = find_method(obj, name);
        if (!m.is_undefined() || m.obj()) return m;
        return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'");
    }
    }
}

Value Interp::getitem(const Value &obj, const Value &key, int line) {
    switch (obj.kind()) {
    case Kind::Undefined: fail_undefined(obj, line);
    case Kind::Dict:
        if (key.is_list() && !key.is_tuple()) break;   // unhashable: TypeError -> undefined
        if (key.kind() == Kind::Dict || key.kind() == Kind::Namespace) break;
        if (const Value *v = obj.dict_obj().find(key)) return *v;
        break;
    case Kind::List:
        if ((obj.flavor() <= 1 || obj.flavor() == FRange) && key.is_int_like()) {
            const auto &items = obj.items();
            int64_t i = key.as_int();
            if (i < 0) i += static_cast<int64_t>(items.size());
            if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
        }
        break;
    case Kind::Str:
        if (key.is_int_like()) {
            const StrObj &s = obj.str_obj();
            const int64_t n = static_cast<int64_t>(utf8_length(s));
            int64_t i = key.as_int();
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                if (s.ascii) return Value::str(std::string(1, s.s[static_cast<size_t>(i)]), obj.safe());
                size_t pos = 0;
                for (int64_t k = 0; k < i; ++k) utf8_next(s.s, pos);
                size_t end = pos;
                utf8_next(s.s, end);
                return Value::str(s.s.substr(pos, end - pos), obj.safe());
            }
        }
        break;
    default: break;
    }
    if (key.is_str()) {   // obj[name] failed: try the attribute
        if (obj.kind() == Kind::Namespace) {
            if (Value *v = obj.ns_obj().find(key.as_str())) return *v;
        } else {
            Value m = find_method(obj, key.as_str());
            if (!m.is_undefined() || m.obj()) return m;
        }
    }
    std::string k;
    append_repr(k, key);
    return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute " + k);
}

// --- calls -----------------------------------------------------------------

Value Interp::call(const Value &f, Args &args, Kwargs &kwargs, int line) {
    if (f.is_undefined()) fail_undefined(f, line);
    if (f.kind() != Kind::Callable) fail(std::string("TypeError: '") + type_name(f) + "' object is not callable", line);
    DepthGuard g(*this, line);
    return f.callable_obj().call(*this, args, kwargs, line);
}

// jinja2.runtime.Macro.__call__ + _invoke.
Value Interp::call_macro(const Stmt &def, const std::shared_ptr<Frame> &scope, Args &args, Kwargs &kwargs,
                         const Value *caller, int line) {
    const std::string mname =
        def.kind == SK::Macro ? prog.symbols[static_cast<size_t>(def.sym)] : std::string("caller");
    const size_t nparams = def.params.size();
    Frame f;
    f.parent = scope.get();
    std::vector<bool> given(nparams, false);
    for (size_t i = 0; i < nparams && i < args.size(); ++i) {
        f.vars.emplace_back(def.params[i], args[i]);
        given[i] = true;
    }
    if (args.size() < nparams) {
        for (size_t i = args.size(); i < nparams; ++i) {
            const std::string &pname = prog.symbols[static_cast<size_t>(def.params[i])];
            for (size_t k = 0; k < kwargs.size(); ++k)
                if (kwargs[k].first == pname) {
                    f.vars.emplace_back(def.params[i], std::move(kwargs[k].second));
                    kwargs.erase(kwargs.begin() + static_cast<std::ptrdiff_t>(k));
                    given[i] = true;
                    break;
                }
        }
    }
    Value caller_v;
    bool have_caller = caller != nullptr;
    if (caller) caller_v = *caller;
    for (size_t k = 0; k < kwargs.size(); ++k)
        if (kwargs[k].first == "caller" && def.uses_caller) {
            if (have_caller) fail("TypeError: macro '" + mname + "' was invoked with two values for caller", line);
            caller_v = std::move(kwargs[k].second);
            have_caller = true;
            kwargs.erase(kwargs.begin() + static_cast<std::ptrdiff_t>(k));
            break;
        }
    if (def.uses_caller) {
        f.vars.emplace_back(prog.sym_caller,
                            have_caller ? caller_v : Value::undefined("No caller defined"));
    } else if (have_caller && caller) {
        fail("TypeError: macro '" + mname + "' takes no keyword argument 'caller'", line);
    }
    if (def.uses_kwargs) {
        auto d = std::make_shared<DictObj>();
        for (auto &kv : kwargs) d->set(Value::str(kv.first), kv.second);
        f.vars.emplace_back(prog.sym_kwargs, Value::dict(d));
    } else if (!kwargs.empty()) {
        fail("TypeError: macro '" + mname + "' takes no keyword argument '" + kwargs[0].first + "'", line);
    }
    if (def.uses_varargs) {
        std::vector<Value> extra;
        for (size_t i = nparams; i < args.size(); ++i) extra.push_back(args[i]);
        f.vars.emplace_back(prog.sym_varargs, make_list(std::move(extra), line, FTuple));
    } else if (args.size() > nparams) {
        fail("TypeError: macro '" + mname + "' takes not more than " + std::to_string(nparams) + " argument(s)",
             line);
    }
    Frame *saved = frame;
    frame = &f;
    // Defaults are evaluated inside the macro, so they can use earlier parameters.
    const size_t first_default = nparams - def.defaults.size();
    for (size_t i = 0; i < nparams; ++i) {
        if (given[i]) continue;
        Value v = i >= first_default
                      ? eval(*def.defaults[i - first_default])
                      : Value::undefined("parameter '" + prog.symbols[static_cast<size_t>(def.params[i])] +
                                         "' was not provided");
        f.set(def.params[i], std::move(v));
    }
    std::string buf;
    std::string *saved_out = out;
    out = &buf;
    try {
        exec(def.body);
    } catch (...) {
        out = saved_out;
        frame = saved;
        throw;
    }
    out = saved_out;
    frame = saved;
    return make_str(std::move(buf), line);
}

void Interp::eval_args(const Expr &e, size_t first, Args &args, Kwargs &kwargs) {
    const size_t n = e.kids.size();
    const size_t nkw = e.kwnames.size();
    args.reserve(n - first - nkw);
    for (size_t i = first; i < n - nkw; ++i) args.push_back(eval(*e.kids[i]));
    if (e.dyn_args) {
        for (Value &v : iterate(eval(*e.dyn_args), e.line)) args.push_back(std::move(v));
    }
    for (size_t k = 0; k < nkw; ++k) kwargs.emplace_back(e.kwnames[k], eval(*e.kids[n - nkw + k]));
    if (e.dyn_kwargs) {
        Value d = eval(*e.dyn_kwargs);
        if (d.kind() != Kind::Dict) fail(std::string("TypeError: argument after ** must be a mapping, not ") + type_name(d), e.line);
        for (const auto &kv : d.dict_obj().items) {
            if (!kv.first.is_str()) fail("TypeError: keywords must be strings", e.line);
            for (const auto &have : kwargs)
                if (have.first == kv.first.as_str())
                    fail("TypeError: got multiple values for keyword argument '" + have.first + "'", e.line);
            kwargs.emplace_back(kv.first.as_str(), kv.second);
        }
    }
}

Value Interp::eval_call(const Expr &e) {
    const Expr &callee = *e.kids[0];
    Args args;
    Kwargs kwargs;
    if (callee.kind == EK::Getattr) {   // obj.method(...): no bound-method object needed
        Value obj = eval(*callee.kids[0]);
        const std::string &name = callee.value.as_str();
        if (obj.is_undefined()) fail_undefined(obj, e.line);
        if (obj.kind() == Kind::Str || obj.kind() == Kind::List ||
            (obj.kind() == Kind::Dict && !find_method(obj, name).is_undefined())) {
            Value m = find_method(obj, name);
            if (m.kind() == Kind::Callable) {
                eval_args(e, 1, args, kwargs);
                DepthGuard g(*this, e.line);
                return call_method(*this, obj, name, args, kwargs, e.line);
            }
        }
        Value f = getattr(obj, name, e.line);
        eval_args(e, 1, args, kwargs);
        return call(f, args, kwargs, e.line);
    }
    Value f = eval(callee);
    eval_args(e, 1, args, kwargs);
    return call(f, args, kwargs, e.line);
}

Value Interp::eval_filter(const Expr &e, const Value *block_input) {
    Value base;
    if (!e.kids[0]) base = block_input ? *block_input : Value();
    else if (e.kids[0]->kind == EK::Filter) base = eval_filter(*e.kids[0], block_input);
    else base = eval(*e.kids[0]);
    Args args;
    Kwargs kwargs;
    eval_args(e, 1, args, kwargs);
    return apply_filter(*this, static_cast<FilterId>(e.id), base, args, kwargs, e.line);
}

// --- operators ---------------------------------------------------------------

bool Interp::less(const Value &a, const Value &b, int line, int nesting) {
    if (nesting > kMaxValueNesting) fail("RecursionError: values nested too deeply to compare", line);
    if (a.is_undefined()) fail_undefined(a, line);
    if (b.is_undefined()) fail_undefined(b, line);
    if (a.is_number() && b.is_number()) {
        if (a.kind() != Kind::Float && b.kind() != Kind::Float) return a.as_int() < b.as_int();
        if (a.kind() == Kind::Float && b.kind() == Kind::Float) return a.as_float() < b.as_float();
        // int vs float: exact unless the int is beyond 2^53, where double is close enough
        return a.as_float() < b.as_float();
    }
    if (a.is_str() && b.is_str()) return a.as_str() < b.as_str();   // UTF-8 order == code point order
    if (a.is_list() && b.is_list() && a.flavor() == b.flavor() && a.flavor() <= 1) {
        const auto &x = a.items(), &y = b.items();
        tick(x.size() / 16 + 1, line);
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (equal(x[i], y[i], nesting + 1)) continue;
            return less(x[i], y[i], line, nesting + 1);
        }
        return x.size() < y.size();
    }
    fail(std::string("TypeError: '<' not supported between instances of '") + type_name(a) + "' and '" +
             type_name(b) + "'", line);
}

size_t Interp::length(const Value &v, int line) {
    switch (v.kind()) {
    case Kind::Undefined: return 0;
    case Kind::Str: return utf8_length(v.str_obj());
    case Kind::List:
        if (v.is_generator()) fail("TypeError: object of type 'generator' has no len()", line);
        return v.items().size();
    case Kind::Dict: return v.dict_obj().items.size();
    default: fail(std::string("TypeError: object of type '") + type_name(v) + "' has no len()", line);
    }
}

std::vector<Value> Interp::iterate(const Value &v, int line) {
    switch (v.kind()) {
    case Kind::Undefined: return {};
    case Kind::List: {
        if (!v.is_generator()) return v.items();
        ListObj &l = v.mutable_list();
        std::vector<Value> rest(l.items.begin() + static_cast<std::ptrdiff_t>(l.pos), l.items.end());
        l.pos = l.items.size();
        return rest;
    }
    case Kind::Dict: {
        std::vector<Value> keys;
        keys.reserve(v.dict_obj().items.size());
        for (const auto &kv : v.dict_obj().items) keys.push_back(kv.first);
        return keys;
    }
    case Kind::Str: {
        const std::string &s = v.as_str();
        std::vector<Value> chars;
        charge(s.size() * 96, line);   // a Value and a one-character string each
        for (size_t i = 0; i < s.size();) {
            const size_t start = i;
            utf8_next(s, i);
            chars.push_back(Value::str(s.substr(start, i - start), v.safe()));
        }
        return chars;
    }
    default: fail(std::string("TypeError: '") + type_name(v) + "' object is not iterable", line);
    }
}

bool Interp::contains(const Value &c, const Value &item, int line) {
    switch (c.kind()) {
    case Kind::Undefined: return false;
    case Kind::Str:
        if (!item.is_str())
            fail(std::string("TypeError: 'in <string>' requires string as left operand, not ") + type_name(item),
                 line);
        tick(c.as_str().size() / 64 + 1, line);
        return c.as_str().find(item.as_str()) != std::string::npos;
    case Kind::Dict:
        if ((item.is_list() && !item.is_tuple()) || item.kind() == Kind::Dict)
            fail(std::string("TypeError: unhashable type: '") + type_name(item) + "'", line);
        return c.dict_obj().find(item) != nullptr;
    case Kind::List: {
        tick(c.items().size() / 4 + 1, line);
        if (c.is_generator()) {
            ListObj &l = c.mutable_list();
            while (l.pos < l.items.size())
                if (equal(l.items[l.pos++], item)) return true;
            return false;
        }
        for (const auto &x : c.items())
            if (equal(x, item)) return true;
        return false;
    }
    default:
        fail(std::string("TypeError: argument of type '") + type_name(c) + "' is not iterable", line);
    }
}

Value Interp::binary(BinOp op, const Value &a, const Value &b, int line) {
    if (a.is_undefined()) fail_undefined(a, line);
    if (b.is_undefined()) fail_undefined(b, line);
    static const char *const sym[] = {"+", "-", "*", "/", "//", "%", "**"};
    auto type_msg = [&]() {
        return std::string("TypeError: unsupported operand type(s) for ") + sym[static_cast<int>(op)] + ": '" +
               type_name(a) + "' and '" + type_name(b) + "'";
    };
    if (a.is_number() && b.is_number()) {
        const bool ints = a.kind() != Kind::Float && b.kind() != Kind::Float;
        const int64_t x = a.as_int(), y = b.as_int();
        const double fx = a.as_float(), fy = b.as_float();
        int64_t r;
        switch (op) {
        case BinOp::Add:
            if (!ints) return Value::number(fx + fy);
            if (!checked_add(x, y, r)) fail("unsupported: integer overflow", line);
            return Value::integer(r);
        case BinOp::Sub:
            if (!ints) return Value::number(fx - fy);
            if (!checked_sub(x, y, r)) fail("unsupported: integer overflow", line);
            return Value::integer(r);
        case BinOp::Mul:
            if (!ints) return Value::number(fx * fy);
            if (!checked_mul(x, y, r)) fail("unsupported: integer overflow", line);
            return Value::integer(r);
        case BinOp::Div:
            if (fy == 0) fail("ZeroDivisionError: division by zero", line);
            return Value::number(fx / fy);
        case BinOp::FloorDiv:
            if (ints) {
                if (y == 0) fail("ZeroDivisionError: integer division or modulo by zero", line);
                if (x == INT64_MIN && y == -1) fail("unsupported: integer overflow", line);
                return Value::integer(floordiv(x, y));
            }
            if (fy == 0) fail("ZeroDivisionError: float floor division by zero", line);
            return Value::number(std::floor(fx / fy));
        case BinOp::Mod:
            if (ints) {
                if (y == 0) fail("ZeroDivisionError: integer division or modulo by zero", line);
                if (y == -1) return Value::integer(0);
                return Value::integer(pymod(x, y));
            }
            if (fy == 0) fail("ZeroDivisionError: float modulo", line);
            return Value::number(pyfmod(fx, fy));
        case BinOp::Pow:
            if (ints && y >= 0) {
                int64_t acc = 1, base = x, e = y;
                while (e > 0) {
                    if (e & 1)
                        if (!checked_mul(acc, base, acc)) fail("unsupported: integer overflow", line);
                    e >>= 1;
                    if (e > 0 && !checked_mul(base, base, base)) fail("unsupported: integer overflow", line);
                }
                return Value::integer(acc);
            }
            if (fx == 0 && fy < 0) fail("ZeroDivisionError: 0.0 cannot be raised to a negative power", line);
            {
                const double p = std::pow(fx, fy);
                if (std::isnan(p) && !std::isnan(fx) && !std::isnan(fy))
                    fail("unsupported: a negative number to a fractional power (complex result)", line);
                return Value::number(p);
            }
        }
    }
    if (op == BinOp::Add) {
        if (a.is_str() && b.is_str()) {
            // Markup + str escapes the str (Markup.__add__ / __radd__).
            const bool safe = a.safe() || b.safe();
            std::string s;
            if (safe && !a.safe()) s = html_escape(a.as_str());
            else s = a.as_str();
            if (safe && !b.safe()) s += html_escape(b.as_str());
            else s += b.as_str();
            return make_str(std::move(s), line, safe);
        }
        if (a.is_list() && b.is_list() && a.flavor() == b.flavor() && a.flavor() <= 1) {
            std::vector<Value> items = a.items();
            items.insert(items.end(), b.items().begin(), b.items().end());
            return make_list(std::move(items), line, a.flavor());
        }
        fail(type_msg(), line);
    }
    if (op == BinOp::Mul) {
        const Value *seq = a.is_int_like() ? &b : &a;
        const Value *n = a.is_int_like() ? &a : &b;
        if (n->is_int_like() && (seq->is_str() || (seq->is_list() && seq->flavor() <= 1))) {
            const int64_t times = n->as_int() < 0 ? 0 : n->as_int();
            if (times == 0 || (seq->is_str() && seq->as_str().empty()))
                return seq->is_str() ? Value::str("", seq->safe()) : make_list({}, line, seq->flavor());
            if (seq->is_list() && seq->items().empty()) return make_list({}, line, seq->flavor());
            if (seq->is_str()) {
                const size_t unit = seq->as_str().size();
                if (unit && static_cast<uint64_t>(times) > lim.max_output_bytes / unit)
                    fail("a string repeated " + std::to_string(times) + " times exceeds the size limit", line);
                std::string s;
                s.reserve(unit * static_cast<size_t>(times));
                for (int64_t i = 0; i < times; ++i) s += seq->as_str();
                return make_str(std::move(s), line, seq->safe());
            }
            const size_t unit = seq->items().size();
            if (unit && static_cast<uint64_t>(times) > (lim.max_work_bytes / sizeof(Value)) / unit)
                fail("a list repeated " + std::to_string(times) + " times exceeds the size limit", line);
            std::vector<Value> items;
            for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
            return make_list(std::move(items), line, seq->flavor());
        }
        fail(type_msg(), line);
    }
    if (op == BinOp::Mod && a.is_str()) {
        std::string s = printf_format(*this, a, b, line);
        return make_str(std::move(s), line, a.safe());
    }
    fail(type_msg(), line);
}

Value Interp::eval_compare(const Expr &e) {
    Value left = eval(*e.kids[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.kids[i + 1]);
        bool r;
        if (left.is_str() && right.is_str()) tick(left.as_str().size() / 64 + 1, e.line);
        else if (left.is_list() && right.is_list()) tick(left.items().size() / 4 + 1, e.line);
        switch (e.ops[i]) {
        case CmpOp::Eq: r = equal(left, right); break;
        case CmpOp::Ne: r = !equal(left, right); break;
        case CmpOp::Lt: r = less(left, right, e.line); break;
        case CmpOp::Gt: r = less(right, left, e.line); break;
        case CmpOp::Le: r = less(left, right, e.line) || equal(left, right); break;
        case CmpOp::Ge: r = less(right, left, e.line) || equal(left, right); break;
        case CmpOp::In: r = contains(right, left, e.line); break;
        case CmpOp::NotIn: r = !contains(right, left, e.line); break;
        default: r = false;
        }
        if (!r) return Value::boolean(false);
        left = std::move(right);
    }
    return Value::boolean(true);
}

namespace {

// What jinja2's optimizer folds at compile time: literals, and lists, tuples
// and dicts of them.
bool is_const_expr(const Expr *e) {
    if (!e) return true;
    if (e->kind == EK::Const) return true;
    if (e->kind != EK::List && e->kind != EK::Tuple && e->kind != EK::Dict) return false;
    for (const auto &k : e->kids)
        if (!is_const_expr(k.get())) return false;
    return true;
}

}  // namespace

// Python slicing of str / list / tuple. jinja2 compiles slices to plain
// Python subscripts (they bypass the sandbox's getitem), so a bad object or
// index is a TypeError, not an undefined value -- except when the whole
// subscript is constant: the optimizer then folds it through the sandbox's
// getitem, which turns the TypeError into Undefined.
Value Interp::eval_slice_checked(const Value &obj, const Expr &s) {
    if (obj.is_undefined()) fail_undefined(obj, s.line);
    int64_t idx[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
        if (!s.kids[static_cast<size_t>(k)]) continue;
        Value v = eval(*s.kids[static_cast<size_t>(k)]);
        if (v.is_none()) continue;
        if (v.is_undefined()) fail_undefined(v, s.line);
        if (!v.is_int_like())
            fail("TypeError: slice indices must be integers or None or have an __index__ method", s.line);
        idx[k] = v.as_int();
        given[k] = true;
    }
    if (!obj.is_str() && !(obj.is_list() && (obj.flavor() <= 1 || obj.flavor() == FRange)))
        fail(std::string("TypeError: '") + type_name(obj) + "' object is not subscriptable", s.line);
    const bool is_str = obj.is_str();
    if (idx[2] == 0) fail("ValueError: slice step cannot be zero", s.line);
    // code points of a non-ASCII string
    std::vector<size_t> offs;
    int64_t n;
    if (is_str) {
        const StrObj &so = obj.str_obj();
        if (so.ascii) {
            n = static_cast<int64_t>(so.s.size());
        } else {
            for (size_t i = 0; i < so.s.size();) {
                offs.push_back(i);
                utf8_next(so.s, i);
            }
            offs.push_back(so.s.size());
            n = static_cast<int64_t>(offs.size()) - 1;
        }
    } else {
        n = static_cast<int64_t>(obj.items().size());
    }
    const int64_t step = idx[2];
    int64_t start, stop;
    // PySlice_AdjustIndices
    if (step > 0) {
        start = given[0] ? idx[0] : 0;
        stop = given[1] ? idx[1] : n;
        if (start < 0) start = std::max<int64_t>(start + n, 0);
        if (start > n) start = n;
        if (stop < 0) stop = std::max<int64_t>(stop + n, 0);
        if (stop > n) stop = n;
    } else {
        start = given[0] ? idx[0] : n - 1;
        stop = given[1] ? idx[1] : -1 - n;
        if (start < 0) start = std::max<int64_t>(start + n, -1);
        if (start >= n) start = n - 1;
        if (stop < 0) stop = std::max<int64_t>(stop + n, -1);
        if (stop >= n) stop = n - 1;
    }
    std::vector<int64_t> picks;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picks.push_back(i);
    if (is_str) {
        const StrObj &so = obj.str_obj();
        std::string r;
        for (int64_t i : picks) {
            if (so.ascii) r += so.s[static_cast<size_t>(i)];
            else r.append(so.s, offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1] - offs[static_cast<size_t>(i)]);
        }
        return make_str(std::move(r), s.line, obj.safe());
    }
    std::vector<Value> r;
    r.reserve(picks.size());
    for (int64_t i : picks) r.push_back(obj.items()[static_cast<size_t>(i)]);
    return make_list(std::move(r), s.line, obj.flavor() == FRange ? static_cast<uint8_t>(FList) : obj.flavor());
}

// --- expressions ---------------------------------------------------------------

Value Interp::eval(const Expr &e) {
    if (++steps > lim.max_steps) fail("template exceeded " + std::to_string(lim.max_steps) + " evaluation steps", e.line);
    DepthGuard g(*this, e.line);
    switch (e.kind) {
    case EK::Const: return e.value;
    case EK::Name: return lookup(e.sym, e.line);
    case EK::List:
    case EK::Tuple: {
        std::vector<Value> items;
        items.reserve(e.kids.size());
        for (const auto &k : e.kids) items.push_back(eval(*k));
        return make_list(std::move(items), e.line, e.kind == EK::Tuple ? FTuple : FList);
    }
    case EK::Dict: {
        auto d = std::make_shared<DictObj>();
        for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
            Value k = eval(*e.kids[i]);
            Value v = eval(*e.kids[i + 1]);
            if ((k.is_list() && !k.is_tuple()) || k.kind() == Kind::Dict || k.kind() == Kind::Namespace)
                fail(std::string("TypeError: unhashable type: '") + type_name(k) + "'", e.line);
            d->set(std::move(k), std::move(v));   // Undefined is hashable too
        }
        charge(d->items.size() * 2 * sizeof(Value), e.line);
        return Value::dict(std::move(d));
    }
    case EK::Getattr: {
        Value obj = eval(*e.kids[0]);
        if (obj.kind() == Kind::Dict && e.id == 0) {   // not a dict method: a key lookup
            if (const Value *v = obj.dict_obj().find(std::string_view(e.value.as_str()))) return *v;
            return Value::undefined("'dict object' has no attribute '" + e.value.as_str() + "'");
        }
        return getattr(obj, e.value.as_str(), e.line);
    }
    case EK::Getitem: {
        Value obj = eval(*e.kids[0]);
        if (e.kids[1]->kind == EK::Slice) {
            const Expr &sl = *e.kids[1];
            const bool folded = is_const_expr(e.kids[0].get()) && is_const_expr(sl.kids[0].get()) &&
                                is_const_expr(sl.kids[1].get()) && is_const_expr(sl.kids[2].get());
            if (folded) {
                try {
                    return eval_slice_checked(obj, sl);
                } catch (const Error &) {
                    return Value::undefined("the constant subscript failed");
                }
            }
            return eval_slice_checked(obj, sl);
        }
        return getitem(obj, eval(*e.kids[1]), e.line);
    }
    case EK::Slice: fail("unexpected slice", e.line);
    case EK::Call: return eval_call(e);
    case EK::Filter: return eval_filter(e, nullptr);
    case EK::Test: {
        Value v = eval(*e.kids[0]);
        Args args;
        Kwargs kwargs;
        eval_args(e, 1, args, kwargs);
        return Value::boolean(apply_test(*this, static_cast<TestId>(e.id), v, args, kwargs, e.line));
    }
    case EK::Neg:
    case EK::Pos: {
        Value v = eval(*e.kids[0]);
        if (v.is_undefined()) fail_undefined(v, e.line);
        if (v.kind() == Kind::Float) return Value::number(e.kind == EK::Neg ? -v.as_float() : v.as_float());
        if (v.is_int_like()) {
            if (e.kind == EK::Pos) return Value::integer(v.as_int());
            if (v.as_int() == INT64_MIN) fail("unsupported: integer overflow", e.line);
            return Value::integer(-v.as_int());
        }
        fail(std::string("TypeError: bad operand type for unary ") + (e.kind == EK::Neg ? "-" : "+") + ": '" +
                 type_name(v) + "'", e.line);
    }
    case EK::Not: return Value::boolean(!truthy(eval(*e.kids[0])));
    case EK::Binary: return binary(static_cast<BinOp>(e.id), eval(*e.kids[0]), eval(*e.kids[1]), e.line);
    case EK::Concat: {
        std::string s;
        for (const auto &k : e.kids) append_str(s, eval(*k));
        return make_str(std::move(s), e.line);
    }
    case EK::Compare: return eval_compare(e);
    case EK::And: {
        Value a = eval(*e.kids[0]);
        if (!truthy(a)) return a;
        return eval(*e.kids[1]);
    }
    case EK::Or: {
        Value a = eval(*e.kids[0]);
        if (truthy(a)) return a;
        return eval(*e.kids[1]);
    }
    case EK::CondExpr:
        if (truthy(eval(*e.kids[0]))) return eval(*e.kids[1]);
        if (e.kids[2]) return eval(*e.kids[2]);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    fail("internal error: unknown expression", e.line);
}

// --- statements -----------------------------------------------------------------

std::string Interp::capture(const Body &body) {
    std::string buf;
    std::string *saved = out;
    out = &buf;
    try {
        exec(body);
    } catch (...) {
        out = saved;
        throw;
    }
    out = saved;
    return buf;
}

void Interp::bind_target(Frame &f, const Target &t, const Value &v, int line) {
    if (!t.tuple) {
        f.set(t.syms[0], v);
        return;
    }
    std::vector<Value> parts = iterate(v, line);
    if (parts.size() != t.syms.size())
        fail("ValueError: cannot unpack " + std::to_string(parts.size()) + " values into " +
                 std::to_string(t.syms.size()) + " names", line);
    for (size_t i = 0; i < parts.size(); ++i) f.set(t.syms[i], std::move(parts[i]));
}

void Interp::assign_target(const Target &t, const Value &v, int line) {
    if (!t.tuple) {
        assign(t.syms[0], v);
        return;
    }
    std::vector<Value> parts = iterate(v, line);
    if (parts.size() != t.syms.size())
        fail("ValueError: cannot unpack " + std::to_string(parts.size()) + " values into " +
                 std::to_string(t.syms.size()) + " names", line);
    for (size_t i = 0; i < parts.size(); ++i) assign(t.syms[i], std::move(parts[i]));
}

namespace {

// jinja2.runtime.LoopContext as `loop`: attributes and the cycle / changed
// methods. One object per loop, updated in place, as in jinja2.
struct LoopObj final : CallableObj {
    const std::vector<Value> *items = nullptr;
    size_t index0 = 0;
    Value last_changed;
    bool changed_set = false;
    std::string name() const override { return "LoopContext"; }
    std::string repr() const override {
        if (!items) return "<LoopContext>";
        return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items->size()) + ">";
    }
    Value call(Interp &in, Args &, Kwargs &, int line) const override {
        in.fail("unsupported: calling loop() (recursive loops)", line);
    }
};

}  // namespace

Flow Interp::exec_for(const Stmt &s) {
    Value iterable = eval(*s.expr);
    std::vector<Value> owned;
    const std::vector<Value> *items;
    if (iterable.is_list() && !iterable.is_generator()) {
        items = &iterable.items();
    } else {
        owned = iterate(iterable, s.line);
        items = &owned;
    }
    std::vector<Value> filtered;
    if (s.cond) {
        for (const Value &item : *items) {
            Frame f;
            f.parent = frame;
            bind_target(f, s.target, item, s.line);
            frame = &f;
            bool keep;
            try {
                keep = truthy(eval(*s.cond));
            } catch (...) {
                frame = f.parent;
                throw;
            }
            frame = f.parent;
            if (keep) filtered.push_back(item);
        }
        items = &filtered;
    }
    std::shared_ptr<LoopObj> loop;
    Value loop_v;
    if (s.uses_loop) {
        loop = std::make_shared<LoopObj>();
        loop->items = items;
        loop_v = Value::callable(loop);
    }
    Flow result = Flow::Normal;
    for (size_t i = 0; i < items->size(); ++i) {
        if (++loop_iterations > lim.max_loop_iterations)
            fail("template exceeded " + std::to_string(lim.max_loop_iterations) + " loop iterations", s.line);
        Frame f;
        f.parent = frame;
        if (loop) {
            loop->index0 = i;
            f.vars.emplace_back(prog.sym_loop, loop_v);
        }
        bind_target(f, s.target, (*items)[i], s.line);
        frame = &f;
        Flow fl;
        try {
            fl = exec(s.body);
        } catch (...) {
            frame = f.parent;
            if (loop) loop->items = nullptr;
            throw;
        }
        frame = f.parent;
        if (fl == Flow::Break) break;
    }
    if (loop) loop->items = nullptr;   // `loop` may outlive the items (kept in a namespace)
    if (items->empty()) result = exec(s.else_body);
    return result;
}

Value loop_attribute(Interp &in, const Value &loop, const std::string &name, int line) {
    auto *lo = dynamic_cast<LoopObj *>(loop.obj().get());
    if (!lo->items) in.fail("unsupported: using `loop` after its loop ended", line);
    const size_t n = lo->items->size(), i = lo->index0;
    if (name == "index") return Value::integer(static_cast<int64_t>(i + 1));
    if (name == "index0") return Value::integer(static_cast<int64_t>(i));
    if (name == "revindex") return Value::integer(static_cast<int64_t>(n - i));
    if (name == "revindex0") return Value::integer(static_cast<int64_t>(n - i - 1));
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i + 1 == n);
    if (name == "length") return Value::integer(static_cast<int64_t>(n));
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem")
        return i > 0 ? (*lo->items)[i - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem")
        return i + 1 < n ? (*lo->items)[i + 1] : Value::undefined("there is no next item");
    return Value::undefined("'LoopContext' object has no attribute '" + name + "'");
}

Value loop_method(Interp &in, const Value &loop, const std::string &name, Args &args, int line) {
    auto *lo = dynamic_cast<LoopObj *>(loop.obj().get());
    if (!lo->items) in.fail("unsupported: using `loop` after its loop ended", line);
    if (name == "cycle") {
        if (args.empty()) in.fail("TypeError: no items for cycling given", line);
        return args[lo->index0 % args.size()];
    }
    // changed(*value): true when the arguments differ from the last call's
    Value now = Value::list(args, FTuple);
    if (!lo->changed_set || !equal(now, lo->last_changed)) {
        lo->last_changed = now;
        lo->changed_set = true;
        return Value::boolean(true);
    }
    return Value::boolean(false);
}

bool is_loop(const Value &v) { return v.kind() == Kind::Callable && dynamic_cast<LoopObj *>(v.obj().get()); }

Flow Interp::exec(const Body &body) {
    for (const auto &s : body) {
        const Flow f = exec(*s);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

// Errors raised below a statement without a line of their own (value
// formatting, JSON) get the statement's line.
Flow Interp::exec(const Stmt &s) {
    try {
        return exec_stmt(s);
    } catch (Error &e) {
        if (e.line == 0) e.line = s.line;
        throw;
    }
}

Flow Interp::exec_stmt(const Stmt &s) {
    if (++steps > lim.max_steps) fail("template exceeded " + std::to_string(lim.max_steps) + " evaluation steps", s.line);
    DepthGuard g(*this, s.line);
    switch (s.kind) {
    case SK::Text: emit(s.text, s.line); return Flow::Normal;
    case SK::Output: {
        Value v = eval(*s.expr);
        if (v.is_str()) {
            emit(v.as_str(), s.line);
        } else {
            std::string tmp;
            append_str(tmp, v);
            emit(tmp, s.line);
        }
        return Flow::Normal;
    }
    case SK::If:
        for (size_t i = 0; i < s.conds.size(); ++i)
            if (truthy(eval(*s.conds[i]))) return exec(s.bodies[i]);
        return exec(s.else_body);
    case SK::For: return exec_for(s);
    case SK::Set: assign_target(s.target, eval(*s.expr), s.line); return Flow::Normal;
    case SK::SetNs: {
        Value ns = lookup(s.sym, s.line);
        if (ns.kind() != Kind::Namespace) fail("cannot assign attribute on non-namespace object", s.line);
        Value v = eval(*s.expr);
        if (!s.text.empty() && s.text[0] == '_')   // transformers' TemplateNamespace
            fail("SecurityError: Chat templates cannot store underscore-prefixed attributes on a namespace, "
                 "but got '" + s.text + "'", s.line);
        NamespaceObj &o = ns.ns_obj();
        if (Value *p = o.find(s.text)) *p = std::move(v);
        else o.attrs.emplace_back(s.text, std::move(v));
        return Flow::Normal;
    }
    case SK::SetBlock: {
        Value v = make_str(capture(s.body), s.line);
        if (s.expr) v = eval_filter(*s.expr, &v);
        assign_target(s.target, v, s.line);
        return Flow::Normal;
    }
    case SK::Macro: {
        auto m = std::make_shared<MacroObj>();
        m->def = &s;
        m->scope = snapshot();
        m->nm = prog.symbols[static_cast<size_t>(s.sym)];
        assign(s.sym, Value::callable(std::move(m)));
        return Flow::Normal;
    }
    case SK::CallBlock: {
        auto c = std::make_shared<MacroObj>();
        c->def = &s;
        c->scope = snapshot();
        c->nm = "caller";
        Value caller = Value::callable(std::move(c));
        const Expr &call_e = *s.expr;
        Args args;
        Kwargs kwargs;
        Value f = eval(*call_e.kids[0]);
        eval_args(call_e, 1, args, kwargs);
        if (f.is_undefined()) fail_undefined(f, s.line);
        if (auto *m = dynamic_cast<const MacroObj *>(f.kind() == Kind::Callable ? f.obj().get() : nullptr)) {
            DepthGuard g2(*this, s.line);
            Value r = call_macro(*m->def, m->scope, args, kwargs, &caller, s.line);
            emit(r.as_str(), s.line);
        } else {
            kwargs.emplace_back("caller", caller);
            Value r = call(f, args, kwargs, s.line);
            std::string tmp;
            append_str(tmp, r);
            emit(tmp, s.line);
        }
        return Flow::Normal;
    }
    case SK::FilterBlock: {
        Value body = make_str(capture(s.body), s.line);
        Value r = eval_filter(*s.expr, &body);
        std::string tmp;
        append_str(tmp, r);
        emit(tmp, s.line);
        return Flow::Normal;
    }
    case SK::With: {
        Frame f;
        f.parent = frame;
        for (size_t i = 0; i < s.with_targets.size(); ++i)
            bind_target(f, s.with_targets[i], eval(*s.with_values[i]), s.line);
        frame = &f;
        Flow fl;
        try {
            fl = exec(s.body);
        } catch (...) {
            frame = f.parent;
            throw;
        }
        frame = f.parent;
        return fl;
    }
    case SK::Break: return Flow::Break;
    case SK::Continue: return Flow::Continue;
    case SK::Scope: return exec(s.body);
    }
    return Flow::Normal;
}

// Builtin global callables, installed in the root scope before the context.
Value make_global(Global g) { return Value::callable(std::make_shared<GlobalObj>(g)); }

}  // namespace vlm::jinja
