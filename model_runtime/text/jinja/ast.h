// ast.h: the parsed template, node for node what jinja2.parser builds for the
// constructs chat templates use. Names are interned to symbol ids at parse
// time; filters, tests and globals are resolved to ids (unknown ones are load
// errors), so rendering never looks anything up by string except dict keys.
#pragma once

#include "text/jinja/value.h"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace vlm::jinja {

enum class EK : uint8_t {
    Const,      // value
    Name,       // sym
    List,       // kids
    Tuple,      // kids
    Dict,       // kids: k0, v0, k1, v1, ...
    Getattr,    // kids[0] . value (Str: the attribute name)
    Getitem,    // kids[0] [ kids[1] ]
    Slice,      // kids[0..2]: start, stop, step (null when absent)
    Call,       // kids[0] ( kids[1..npos] , kwnames = kids[npos+1..] )
    Filter,     // kids[0] (null in a filter block / set block) | id ( args )
    Test,       // kids[0] is id ( args )
    Neg,
    Pos,
    Not,
    Binary,     // op: BinOp
    Concat,     // kids: a ~ b ~ ...
    Compare,    // kids[0] ops[i] kids[i+1]
    And,
    Or,
    CondExpr,   // kids: test, then, else (null: Undefined)
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct Expr {
    EK kind;
    int line;
    int sym = -1;       // Name
    int id = -1;        // Filter / Test: builtin id; Binary: BinOp; Getattr: 1 if the name is a method name
    int npos = 0;       // Call / Filter / Test: positional arguments (after kids[0])
    Value value;        // Const; Getattr: attribute name
    std::vector<std::unique_ptr<Expr>> kids;
    std::vector<std::string> kwnames;   // keyword arguments follow the positional ones
    std::unique_ptr<Expr> dyn_args;     // f(*dyn_args, **dyn_kwargs)
    std::unique_ptr<Expr> dyn_kwargs;
    std::vector<CmpOp> ops;
    Expr(EK k, int l) : kind(k), line(l) {}
};
using ExprPtr = std::unique_ptr<Expr>;

enum class SK : uint8_t {
    Text,         // text
    Output,       // {{ expr }}
    If,           // conds[i] -> bodies[i]; else_body
    For,          // targets in expr [if cond] body else else_body
    Set,          // targets = expr
    SetNs,        // sym.attr = expr
    SetBlock,     // targets (one) = body | filter
    Macro,        // sym(params=defaults) body
    CallBlock,    // call(params) expr body
    FilterBlock,  // body | filter
    With,         // targets = values; body
    Break,
    Continue,
    Scope,        // body ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// An assignment target: one name, or a tuple of them (unpacking).
struct Target {
    std::vector<int> syms;
    bool tuple = false;
};

struct Stmt {
    SK kind;
    int line;
    std::string text;                  // Text; SetNs: attribute
    ExprPtr expr;                      // Output, For iter, Set value, CallBlock call, filters
    ExprPtr cond;                      // For: the `if` filter
    std::vector<ExprPtr> conds;        // If
    std::vector<Body> bodies;          // If
    Body body, else_body;
    Target target;                     // For, Set, SetBlock
    int sym = -1;                      // Macro name, SetNs namespace
    std::vector<int> params;           // Macro / CallBlock
    std::vector<ExprPtr> defaults;     // for the last defaults.size() params
    std::vector<Target> with_targets;  // With
    std::vector<ExprPtr> with_values;
    bool uses_loop = false;            // For: the body reads `loop`
    bool uses_caller = false;          // Macro: the body reads caller / varargs / kwargs
    bool uses_varargs = false;
    bool uses_kwargs = false;
    Stmt(SK k, int l) : kind(k), line(l) {}
};

// Builtin globals a Name can resolve to when nothing shadows it.
enum class Global : uint8_t { Range, Dict, Namespace, RaiseException, StrftimeNow, Count };

struct Program {
    Body body;
    std::vector<std::string> symbols;              // id -> name
    std::unordered_map<std::string, int> sym_ids;  // name -> id
    int sym_loop = -1, sym_varargs = -1, sym_kwargs = -1, sym_caller = -1;
    int global_syms[static_cast<int>(Global::Count)];
};

}  // namespace vlm::jinja
