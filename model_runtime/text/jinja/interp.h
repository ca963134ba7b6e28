// interp.h: renders a Program. One Interp per render call (the Program is
// shared and read-only, so renders may run concurrently). Variable scoping is
// jinja2's as observed with transformers' environment: `if` adds no scope,
// each for-loop iteration gets a fresh scope on top of the enclosing one
// (assignments in the body die with the iteration), macros see their own
// arguments plus the template's top-level variables at call time.
//
// Every unit of work is charged against Limits: evaluation steps, loop
// iterations, nesting depth, bytes of strings and lists built, output size.
#pragma once

#include "text/jinja/ast.h"
#include "text/jinja/builtins.h"
#include "text/jinja/chat_template.h"

#include <ctime>
#include <string>
#include <vector>

namespace vlm::jinja {

enum class Flow : uint8_t { Normal, Break, Continue };

struct Frame {
    Frame *parent = nullptr;
    std::vector<std::pair<int, Value>> vars;
    Value *find(int sym) {
        for (auto &kv : vars)
            if (kv.first == sym) return &kv.second;
        return nullptr;
    }
    void set(int sym, Value v) {
        if (Value *p = find(sym)) *p = std::move(v);
        else vars.emplace_back(sym, std::move(v));
    }
};

struct Interp {
    Interp(const Program &p, const Limits &l) : prog(p), lim(l) {}

    const Program &prog;
    const Limits &lim;
    std::vector<Value> root;          // template-level variables, by symbol
    std::vector<uint8_t> root_set;
    Frame *frame = nullptr;           // innermost local scope; nullptr: top level
    std::string *out = nullptr;       // where output goes (macros/blocks capture)
    uint64_t steps = 0;
    uint64_t loop_iterations = 0;
    uint64_t work_bytes = 0;
    int depth = 0;
    std::tm now{};                    // strftime_now()'s clock
    // Every namespace made in this render: their attributes are cleared at the
    // end, which frees reference cycles (ns.x = [ns]).
    std::vector<std::shared_ptr<NamespaceObj>> namespaces;
    ~Interp() {
        for (auto &ns : namespaces) {
            std::vector<std::pair<std::string, Value>> attrs;
            attrs.swap(ns->attrs);
            std::vector<Value> vals;
            for (auto &kv : attrs) vals.push_back(std::move(kv.second));
            release_children(vals);
        }
    }

    // --- rendering ------------------------------------------------------------
    Flow exec(const Body &body);
    Flow exec(const Stmt &s);
    Value eval(const Expr &e);
    void emit(std::string_view s, int line);

    // --- used by the builtins -------------------------------------------------
    [[noreturn]] void fail(const std::string &msg, int line) const { throw Error(msg, line); }
    [[noreturn]] void fail_undefined(const Value &u, int line) const;
    void charge(size_t bytes, int line);               // work budget
    void tick(uint64_t n, int line) {                  // n evaluation steps of builtin work
        steps += n;
        if (steps > lim.max_steps)
            fail("template exceeded " + std::to_string(lim.max_steps) + " evaluation steps", line);
    }
    Value make_str(std::string s, int line, bool safe = false);
    Value make_list(std::vector<Value> items, int line, uint8_t flavor = 0);
    Value lookup(int sym, int line);
    void assign(int sym, Value v);
    Value getattr(const Value &obj, const std::string &name, int line);
    Value getitem(const Value &obj, const Value &key, int line);
    Value call(const Value &f, Args &args, Kwargs &kwargs, int line);
    // Python iteration (consumes generators); Undefined iterates empty.
    std::vector<Value> iterate(const Value &v, int line);
    // len(); fails on values without one.
    size_t length(const Value &v, int line);
    bool contains(const Value &container, const Value &item, int line);
    // <, for sorting and comparisons; fails on unorderable types.
    bool less(const Value &a, const Value &b, int line, int nesting = 0);
    Value binary(BinOp op, const Value &a, const Value &b, int line);
    Value call_macro(const Stmt &def, const std::shared_ptr<Frame> &scope, Args &args, Kwargs &kwargs,
                     const Value *caller, int line);

private:
    Value eval_call(const Expr &e);
    Value eval_filter(const Expr &e, const Value *block_input);
    Value eval_compare(const Expr &e);
    Value eval_slice_checked(const Value &obj, const Expr &s);
    void eval_args(const Expr &e, size_t first, Args &args, Kwargs &kwargs);
    Flow exec_for(const Stmt &s);
    Flow exec_stmt(const Stmt &s);
    void bind_target(Frame &f, const Target &t, const Value &v, int line);
    void assign_target(const Target &t, const Value &v, int line);
    std::string capture(const Body &body);
    std::shared_ptr<Frame> snapshot() const;
};

// Filters, tests, methods and globals (builtins.cpp).
Value apply_filter(Interp &in, FilterId id, const Value &v, Args &args, Kwargs &kwargs, int line);
Value apply_filter_named(Interp &in, const std::string &name, const Value &v, Args &args, Kwargs &kwargs,
                         int line);
bool apply_test(Interp &in, TestId id, const Value &v, Args &args, Kwargs &kwargs, int line);
bool apply_test_named(Interp &in, const std::string &name, const Value &v, Args &args, Kwargs &kwargs,
                      int line);
Value call_global(Interp &in, Global g, Args &args, Kwargs &kwargs, int line);
// The bound method `self.name`: Kind::Callable, an "unsafe" Undefined for a
// sandbox-blocked method, or Undefined with no hint (kind Undefined, no obj)
// when `self` has no such method.
Value find_method(const Value &self, const std::string &name);
Value call_method(Interp &in, const Value &self, const std::string &name, Args &args, Kwargs &kwargs,
                  int line);

// ListObj flavors (Value::make_list): what Python type the sequence is.
enum Flavor : uint8_t { FList = 0, FTuple = 1, FGenerator = 2, FDictItems = 3, FDictKeys = 4, FDictValues = 5, FRange = 6 };

// The `loop` variable of a for-loop (interp.cpp).
bool is_loop(const Value &v);
Value loop_attribute(Interp &in, const Value &loop, const std::string &name, int line);
Value loop_method(Interp &in, const Value &loop, const std::string &name, Args &args, int line);
// A builtin global (range, dict, namespace, raise_exception, strftime_now) as a value.
Value make_global(Global g);
// printf-style `fmt % args` (str % ..., the format filter).
std::string printf_format(Interp &in, const Value &fmt, const Value &args, int line);

}  // namespace vlm::jinja
