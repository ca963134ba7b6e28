// parser.cpp: recursive descent over the lexer's tokens, one function per
// jinja2.parser.Parser method (same names, same order of alternatives).
#include "text/jinja/parser.h"

#include "text/jinja/builtins.h"

#include <initializer_list>

namespace vlm::jinja {

namespace {

struct ParseError {
    std::string msg;
    int line;
};


class Parser {
public:
    Parser(const std::vector<Token> &toks, Program &prog) : t_(toks), prog_(prog) {
        prog_.sym_loop = intern("loop");
        prog_.sym_varargs = intern("varargs");
        prog_.sym_kwargs = intern("kwargs");
        prog_.sym_caller = intern("caller");
        const char *globals[] = {"range", "dict", "namespace", "raise_exception", "strftime_now"};
        for (int g = 0; g < static_cast<int>(Global::Count); ++g) prog_.global_syms[g] = intern(globals[g]);
    }

    void run() {
        prog_.body = subparse({});
        if (cur().type != Tok::Eof) fail("unexpected tag", cur().line);
    }

private:
    const std::vector<Token> &t_;
    Program &prog_;
    size_t i_ = 0;
    int depth_ = 0;
    int loop_depth_ = 0;   // enclosing for-loops in the current macro / template

    struct DepthGuard {
        Parser &p;
        explicit DepthGuard(Parser &pp) : p(pp) {
            if (++p.depth_ > kMaxParseDepth)
                p.fail("unsupported: template nesting deeper than " + std::to_string(kMaxParseDepth),
                       p.cur().line);
        }
        ~DepthGuard() { --p.depth_; }
    };

    [[noreturn]] void fail(const std::string &msg, int line) { throw ParseError{msg, line}; }

    int intern(const std::string &name) {
        auto it = prog_.sym_ids.find(name);
        if (it != prog_.sym_ids.end()) return it->second;
        const int id = static_cast<int>(prog_.symbols.size());
        prog_.symbols.push_back(name);
        prog_.sym_ids.emplace(name, id);
        return id;
    }

    // --- token stream --------------------------------------------------------
    const Token &cur() const { return t_[i_]; }
    const Token &look() const { return t_[i_ + 1 < t_.size() ? i_ + 1 : i_]; }
    const Token &next() {
        const Token &t = t_[i_];
        if (t.type != Tok::Eof) ++i_;
        return t;
    }
    bool is_op(const char *op) const { return cur().type == Tok::Op && cur().text == op; }
    bool is_name(const char *n) const { return cur().type == Tok::Name && cur().text == n; }
    bool skip_op(const char *op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(const char *n) {
        if (!is_name(n)) return false;
        next();
        return true;
    }

    static std::string describe(const Token &t) {
        switch (t.type) {
        case Tok::Data: return "template data";
        case Tok::VarBegin: return "begin of print statement";
        case Tok::VarEnd: return "end of print statement";
        case Tok::BlockBegin: return "begin of statement block";
        case Tok::BlockEnd: return "end of statement block";
        case Tok::Name: return "'" + t.text + "'";
        case Tok::String: return "string";
        case Tok::Int: return "integer";
        case Tok::Float: return "float";
        case Tok::Op: return "'" + t.text + "'";
        case Tok::Eof: return "end of template";
        }
        return "token";
    }

    void expect_op(const char *op) {
        if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()), cur().line);
    }
    void expect(Tok type, const char *what) {
        if (cur().type != type) fail(std::string("expected ") + what + ", got " + describe(cur()), cur().line);
        next();
    }
    const Token &expect_name() {
        if (cur().type != Tok::Name) fail("expected name, got " + describe(cur()), cur().line);
        return next();
    }

    // --- statements ------------------------------------------------------------
    bool at_end_tag(std::initializer_list<const char *> ends) const {
        if (cur().type != Tok::Name) return false;
        for (const char *e : ends)
            if (cur().text == e) return true;
        return false;
    }

    Body subparse(std::initializer_list<const char *> ends) {
        DepthGuard g(*this);
        Body body;
        while (cur().type != Tok::Eof) {
            const Token &tok = cur();
            if (tok.type == Tok::Data) {
                auto s = std::make_unique<Stmt>(SK::Text, tok.line);
                s->text = tok.text;
                body.push_back(std::move(s));
                next();
            } else if (tok.type == Tok::VarBegin) {
                next();
                auto s = std::make_unique<Stmt>(SK::Output, tok.line);
                s->expr = parse_tuple(false, true, {}, false);
                expect(Tok::VarEnd, "end of print statement");
                body.push_back(std::move(s));
            } else if (tok.type == Tok::BlockBegin) {
                next();
                if (ends.size() && at_end_tag(ends)) return body;
                body.push_back(parse_statement(ends));
                expect(Tok::BlockEnd, "end of statement block");
            } else {
                fail("unexpected " + describe(tok), tok.line);
            }
        }
        return body;
    }

    // parse_statements: [':'] %} body up to one of `ends` (left as the current token).
    Body parse_statements(std::initializer_list<const char *> ends, bool drop_needle) {
        skip_op(":");
        expect(Tok::BlockEnd, "end of statement block");
        Body b = subparse(ends);
        if (cur().type == Tok::Eof) {
            std::string want;
            for (const char *e : ends) want += std::string(want.empty() ? "'" : " or '") + e + "'";
            fail("unexpected end of template, expected " + want, cur().line);
        }
        if (drop_needle) next();
        return b;
    }

    StmtPtr parse_statement(std::initializer_list<const char *> ends) {
        const Token &tok = cur();
        if (tok.type != Tok::Name) fail("tag name expected", tok.line);
        const std::string &n = tok.text;
        if (n == "if") return parse_if();
        if (n == "for") return parse_for();
        if (n == "set") return parse_set();
        if (n == "macro") return parse_macro();
        if (n == "call") return parse_call_block();
        if (n == "filter") return parse_filter_block();
        if (n == "with") return parse_with();
        if (n == "generation") {   // transformers' AssistantTracker: renders its body
            const int line = next().line;
            auto s = std::make_unique<Stmt>(SK::Scope, line);
            s->body = parse_statements({"endgeneration"}, true);
            return s;
        }
        if (n == "break" || n == "continue") {   // jinja2.ext.loopcontrols
            if (loop_depth_ == 0) fail("'" + n + "' outside a loop", tok.line);
            auto s = std::make_unique<Stmt>(n == "break" ? SK::Break : SK::Continue, tok.line);
            next();
            return s;
        }
        static const char *const unsupported[] = {"block", "extends", "include", "import", "from",
                                                  "autoescape", "raw", "do", "trans", "pluralize",
                                                  "debug"};
        for (const char *u : unsupported)
            if (n == u) fail("unsupported: the '" + n + "' tag", tok.line);
        std::string msg = "Encountered unknown tag '" + n + "'.";
        if (ends.size()) {
            msg += " Jinja was looking for the following tags:";
            for (const char *e : ends) msg += std::string(" '") + e + "'";
        }
        fail(msg, tok.line);
    }

    StmtPtr parse_if() {
        auto s = std::make_unique<Stmt>(SK::If, next().line);
        while (true) {
            s->conds.push_back(parse_tuple(false, false, {}, false));
            s->bodies.push_back(parse_statements({"elif", "else", "endif"}, false));
            const Token &t = next();
            if (t.text == "elif") continue;
            if (t.text == "else") s->else_body = parse_statements({"endif"}, true);
            break;
        }
        return s;
    }

    StmtPtr parse_for() {
        auto s = std::make_unique<Stmt>(SK::For, next().line);
        s->target = parse_assign_target({"in"});
        if (!skip_name("in")) fail("expected 'in', got " + describe(cur()), cur().line);
        s->expr = parse_tuple(false, false, {"recursive"}, false);
        if (skip_name("if")) s->cond = parse_expression(true);
        if (is_name("recursive")) fail("unsupported: recursive for-loops", cur().line);
        ++loop_depth_;
        s->body = parse_statements({"endfor", "else"}, false);
        --loop_depth_;
        if (next().text != "endfor") s->else_body = parse_statements({"endfor"}, true);
        s->uses_loop = refs(s->body, prog_.sym_loop) || (s->cond && refs(s->cond.get(), prog_.sym_loop));
        return s;
    }

    StmtPtr parse_set() {
        const int line = next().line;
        if (cur().type == Tok::Name && look().type == Tok::Op && look().text == ".") {
            auto s = std::make_unique<Stmt>(SK::SetNs, line);
            s->sym = intern(next().text);
            next();   // .
            s->text = expect_name().text;
            expect_op("=");
            s->expr = parse_tuple(false, true, {}, false);
            return s;
        }
        Target target = parse_assign_target({});
        if (skip_op("=")) {
            auto s = std::make_unique<Stmt>(SK::Set, line);
            s->target = std::move(target);
            s->expr = parse_tuple(false, true, {}, false);
            return s;
        }
        auto s = std::make_unique<Stmt>(SK::SetBlock, line);
        s->target = std::move(target);
        if (is_op("|")) s->expr = parse_filter(nullptr, false);
        s->body = parse_statements({"endset"}, true);
        return s;
    }

    StmtPtr parse_macro() {
        auto s = std::make_unique<Stmt>(SK::Macro, next().line);
        s->sym = intern(expect_name().text);
        parse_signature(*s);
        const int saved = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_statements({"endmacro"}, true);
        loop_depth_ = saved;
        note_macro_refs(*s);
        return s;
    }

    void note_macro_refs(Stmt &s) {
        s.uses_caller = refs(s.body, prog_.sym_caller);
        s.uses_varargs = refs(s.body, prog_.sym_varargs);
        s.uses_kwargs = refs(s.body, prog_.sym_kwargs);
        for (const auto &d : s.defaults) {
            s.uses_caller = s.uses_caller || refs(d.get(), prog_.sym_caller);
            s.uses_varargs = s.uses_varargs || refs(d.get(), prog_.sym_varargs);
            s.uses_kwargs = s.uses_kwargs || refs(d.get(), prog_.sym_kwargs);
        }
    }

    void parse_signature(Stmt &s) {
        expect_op("(");
        while (!is_op(")")) {
            if (!s.params.empty()) expect_op(",");
            s.params.push_back(intern(expect_name().text));
            if (skip_op("=")) s.defaults.push_back(parse_expression(true));
            else if (!s.defaults.empty()) fail("non-default argument follows default argument", cur().line);
        }
        expect_op(")");
    }

    StmtPtr parse_call_block() {
        auto s = std::make_unique<Stmt>(SK::CallBlock, next().line);
        if (is_op("(")) parse_signature(*s);
        s->expr = parse_expression(true);
        if (s->expr->kind != EK::Call) fail("expected call", s->line);
        const int saved = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_statements({"endcall"}, true);
        loop_depth_ = saved;
        note_macro_refs(*s);
        return s;
    }

    StmtPtr parse_filter_block() {
        auto s = std::make_unique<Stmt>(SK::FilterBlock, next().line);
        s->expr = parse_filter(nullptr, true);
        s->body = parse_statements({"endfilter"}, true);
        return s;
    }

    StmtPtr parse_with() {
        auto s = std::make_unique<Stmt>(SK::With, next().line);
        while (cur().type != Tok::BlockEnd) {
            if (!s->with_targets.empty()) expect_op(",");
            s->with_targets.push_back(parse_assign_target({}));
            expect_op("=");
            s->with_values.push_back(parse_expression(true));
        }
        s->body = parse_statements({"endwith"}, true);
        return s;
    }

    // parse_assign_target(with_tuple=True): a name or a (possibly
    // parenthesised) tuple of names.
    Target parse_assign_target(std::initializer_list<const char *> extra_end) {
        ExprPtr e = parse_tuple(true, true, extra_end, false);
        Target t;
        if (e->kind == EK::Name) {
            t.syms.push_back(e->sym);
            return t;
        }
        if (e->kind == EK::Tuple) {
            t.tuple = true;
            for (const auto &k : e->kids) {
                if (k->kind != EK::Name)
                    fail(k->kind == EK::Tuple ? "unsupported: nested tuple unpacking" : "can't assign to this expression", e->line);
                t.syms.push_back(k->sym);
            }
            return t;
        }
        fail("can't assign to this expression", e->line);
    }

    // --- expressions -------------------------------------------------------------
    ExprPtr make(EK k, int line) { return std::make_unique<Expr>(k, line); }

    ExprPtr parse_expression(bool with_condexpr) {
        DepthGuard g(*this);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        const int line = cur().line;
        ExprPtr expr1 = parse_or();
        while (skip_name("if")) {
            ExprPtr expr2 = parse_or();
            ExprPtr expr3 = skip_name("else") ? parse_condexpr() : nullptr;
            auto c = make(EK::CondExpr, line);
            c->kids.push_back(std::move(expr2));
            c->kids.push_back(std::move(expr1));
            c->kids.push_back(std::move(expr3));
            expr1 = std::move(c);
        }
        return expr1;
    }

    ExprPtr parse_or() {
        const int line = cur().line;
        ExprPtr left = parse_and();
        while (skip_name("or")) {
            auto e = make(EK::Or, line);
            e->kids.push_back(std::move(left));
            e->kids.push_back(parse_and());
            left = std::move(e);
        }
        return left;
    }

    ExprPtr parse_and() {
        const int line = cur().line;
        ExprPtr left = parse_not();
        while (skip_name("and")) {
            auto e = make(EK::And, line);
            e->kids.push_back(std::move(left));
            e->kids.push_back(parse_not());
            left = std::move(e);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard g(*this);
            auto e = make(EK::Not, next().line);
            e->kids.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        const int line = cur().line;
        ExprPtr expr = parse_math1();
        std::vector<CmpOp> ops;
        std::vector<ExprPtr> operands;
        while (true) {
            CmpOp op;
            if (skip_op("==")) op = CmpOp::Eq;
            else if (skip_op("!=")) op = CmpOp::Ne;
            else if (skip_op("<")) op = CmpOp::Lt;
            else if (skip_op("<=")) op = CmpOp::Le;
            else if (skip_op(">")) op = CmpOp::Gt;
            else if (skip_op(">=")) op = CmpOp::Ge;
            else if (skip_name("in")) op = CmpOp::In;
            else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
                next();
                next();
                op = CmpOp::NotIn;
            } else {
                break;
            }
            ops.push_back(op);
            operands.push_back(parse_math1());
        }
        if (ops.empty()) return expr;
        auto c = make(EK::Compare, line);
        c->kids.push_back(std::move(expr));
        for (auto &o : operands) c->kids.push_back(std::move(o));
        c->ops = std::move(ops);
        return c;
    }

    ExprPtr binary(BinOp op, ExprPtr l, ExprPtr r, int line) {
        auto e = make(EK::Binary, line);
        e->id = static_cast<int>(op);
        e->kids.push_back(std::move(l));
        e->kids.push_back(std::move(r));
        return e;
    }

    ExprPtr parse_math1() {
        int line = cur().line;
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            const BinOp op = next().text == "+" ? BinOp::Add : BinOp::Sub;
            left = binary(op, std::move(left), parse_concat(), line);
            line = cur().line;
        }
        return left;
    }

    ExprPtr parse_concat() {
        const int line = cur().line;
        ExprPtr first = parse_math2();
        if (!is_op("~")) return first;
        auto c = make(EK::Concat, line);
        c->kids.push_back(std::move(first));
        while (skip_op("~")) c->kids.push_back(parse_math2());
        return c;
    }

    ExprPtr parse_math2() {
        int line = cur().line;
        ExprPtr left = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string &t = next().text;
            const BinOp op = t == "*" ? BinOp::Mul : t == "/" ? BinOp::Div : t == "//" ? BinOp::FloorDiv : BinOp::Mod;
            left = binary(op, std::move(left), parse_pow(), line);
            line = cur().line;
        }
        return left;
    }

    ExprPtr parse_pow() {
        int line = cur().line;
        ExprPtr left = parse_unary(true);
        while (skip_op("**")) {
            left = binary(BinOp::Pow, std::move(left), parse_unary(true), line);
            line = cur().line;
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard g(*this);
        const int line = cur().line;
        ExprPtr node;
        if (skip_op("-")) {
            node = make(EK::Neg, line);
            node->kids.push_back(parse_unary(false));
        } else if (skip_op("+")) {
            node = make(EK::Pos, line);
            node->kids.push_back(parse_unary(false));
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary() {
        const Token &tok = cur();
        if (tok.type == Tok::Name) {
            next();
            auto e = make(EK::Const, tok.line);
            if (tok.text == "true" || tok.text == "True") e->value = Value::boolean(true);
            else if (tok.text == "false" || tok.text == "False") e->value = Value::boolean(false);
            else if (tok.text == "none" || tok.text == "None") e->value = Value::none();
            else {
                if (tok.text == "lipsum" || tok.text == "cycler" || tok.text == "joiner")
                    fail("unsupported: the '" + tok.text + "' global", tok.line);
                e->kind = EK::Name;
                e->sym = intern(tok.text);
            }
            return e;
        }
        if (tok.type == Tok::String) {
            std::string s;
            const int line = tok.line;
            while (cur().type == Tok::String) s += next().text;
            auto e = make(EK::Const, line);
            e->value = Value::str(std::move(s));
            return e;
        }
        if (tok.type == Tok::Int || tok.type == Tok::Float) {
            next();
            auto e = make(EK::Const, tok.line);
            e->value = tok.type == Tok::Int ? Value::integer(tok.ival) : Value::number(tok.fval);
            return e;
        }
        if (skip_op("(")) {
            ExprPtr e = parse_tuple(false, true, {}, true);
            expect_op(")");
            return e;
        }
        if (is_op("[")) return parse_list();
        if (is_op("{")) return parse_dict();
        fail("unexpected " + describe(tok), tok.line);
    }

    bool is_tuple_end(std::initializer_list<const char *> extra_end) const {
        if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || cur().type == Tok::Eof || is_op(")"))
            return true;
        return extra_end.size() && at_end_tag(extra_end);
    }

    ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<const char *> extra_end,
                        bool explicit_parentheses) {
        int line = cur().line;
        std::vector<ExprPtr> args;
        bool is_tuple = false;
        while (true) {
            if (!args.empty()) expect_op(",");
            if (is_tuple_end(extra_end)) break;
            if (simplified) {
                DepthGuard g(*this);
                args.push_back(parse_primary());
            } else {
                args.push_back(parse_expression(with_condexpr));
            }
            if (is_op(",")) is_tuple = true;
            else break;
            line = cur().line;
        }
        if (!is_tuple) {
            if (!args.empty()) return std::move(args[0]);
            if (!explicit_parentheses) fail("Expected an expression, got " + describe(cur()), cur().line);
        }
        auto t = make(EK::Tuple, line);
        t->kids = std::move(args);
        return t;
    }

    ExprPtr parse_list() {
        auto e = make(EK::List, next().line);
        while (!is_op("]")) {
            if (!e->kids.empty()) expect_op(",");
            if (is_op("]")) break;
            e->kids.push_back(parse_expression(true));
        }
        expect_op("]");
        return e;
    }

    ExprPtr parse_dict() {
        auto e = make(EK::Dict, next().line);
        while (!is_op("}")) {
            if (!e->kids.empty()) expect_op(",");
            if (is_op("}")) break;
            e->kids.push_back(parse_expression(true));
            expect_op(":");
            e->kids.push_back(parse_expression(true));
        }
        expect_op("}");
        return e;
    }

    ExprPtr parse_postfix(ExprPtr node) {
        while (true) {
            if (is_op(".") || is_op("[")) node = parse_subscript(std::move(node));
            else if (is_op("(")) node = parse_call(std::move(node));
            else break;
        }
        return node;
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        while (true) {
            if (is_op("|")) node = parse_filter(std::move(node), false);
            else if (is_name("is")) node = parse_test(std::move(node));
            else if (is_op("(")) node = parse_call(std::move(node));
            else break;
        }
        return node;
    }

    ExprPtr parse_subscript(ExprPtr node) {
        const Token &tok = next();
        if (tok.text == ".") {
            const Token &attr = next();
            if (attr.type == Tok::Name) {
                auto e = make(EK::Getattr, tok.line);
                e->value = Value::str(attr.text);
                e->id = is_any_method_name(attr.text) ? 1 : 0;
                e->kids.push_back(std::move(node));
                return e;
            }
            if (attr.type != Tok::Int) fail("expected name or number", attr.line);
            auto e = make(EK::Getitem, tok.line);
            auto k = make(EK::Const, attr.line);
            k->value = Value::integer(attr.ival);
            e->kids.push_back(std::move(node));
            e->kids.push_back(std::move(k));
            return e;
        }
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) expect_op(",");
            args.push_back(parse_subscribed());
        }
        expect_op("]");
        auto e = make(EK::Getitem, tok.line);
        e->kids.push_back(std::move(node));
        if (args.size() == 1) {
            e->kids.push_back(std::move(args[0]));
        } else {
            auto t = make(EK::Tuple, tok.line);
            t->kids = std::move(args);
            e->kids.push_back(std::move(t));
        }
        return e;
    }

    ExprPtr parse_subscribed() {
        const int line = cur().line;
        std::vector<ExprPtr> args;
        if (skip_op(":")) {
            args.push_back(nullptr);
        } else {
            ExprPtr node = parse_expression(true);
            if (!is_op(":")) return node;
            next();
            args.push_back(std::move(node));
        }
        if (is_op(":")) args.push_back(nullptr);
        else if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
        else args.push_back(nullptr);
        if (skip_op(":")) {
            if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
            else args.push_back(nullptr);
        } else {
            args.push_back(nullptr);
        }
        auto s = make(EK::Slice, line);
        s->kids = std::move(args);
        return s;
    }

    // parse_call_args into e: positional then keyword kids.
    void parse_call_args(Expr &e) {
        const int line = cur().line;
        expect_op("(");
        bool require_comma = false;
        while (!is_op(")")) {
            if (require_comma) {
                expect_op(",");
                if (is_op(")")) break;
            }
            if (is_op("*")) {
                next();
                if (e.dyn_args || e.dyn_kwargs) fail("invalid syntax for function call expression", line);
                e.dyn_args = parse_expression(true);
            } else if (is_op("**")) {
                next();
                if (e.dyn_kwargs) fail("invalid syntax for function call expression", line);
                e.dyn_kwargs = parse_expression(true);
            } else if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
                e.kwnames.push_back(next().text);
                next();
                e.kids.push_back(parse_expression(true));
            } else {
                if (!e.kwnames.empty() || e.dyn_args || e.dyn_kwargs)
                    fail("invalid syntax for function call expression", line);
                e.kids.push_back(parse_expression(true));
                ++e.npos;
            }
            require_comma = true;
        }
        expect_op(")");
    }

    ExprPtr parse_call(ExprPtr node) {
        if (node->kind == EK::Getattr && is_unsupported_method(node->value.as_str()))
            fail("unsupported: the Python method ." + node->value.as_str() + "()", node->line);
        auto e = make(EK::Call, cur().line);
        e->kids.push_back(std::move(node));
        parse_call_args(*e);
        return e;
    }

    std::string dotted_name() {
        std::string name = expect_name().text;
        while (skip_op(".")) name += "." + expect_name().text;
        return name;
    }

    ExprPtr parse_filter(ExprPtr node, bool start_inline) {
        while (is_op("|") || start_inline) {
            if (!start_inline) next();
            const int line = cur().line;
            const std::string name = dotted_name();
            std::string why;
            const int id = find_filter(name, why);
            if (id < 0) fail(why, line);
            auto e = make(EK::Filter, line);
            e->id = id;
            e->kids.push_back(std::move(node));
            if (is_op("(")) parse_call_args(*e);
            node = std::move(e);
            start_inline = false;
        }
        return node;
    }

    ExprPtr parse_test(ExprPtr node) {
        const int line = next().line;   // is
        const bool negated = skip_name("not");
        const std::string name = dotted_name();
        std::string why;
        const int id = find_test(name, why);
        if (id < 0) fail(why, line);
        auto e = make(EK::Test, line);
        e->id = id;
        e->kids.push_back(std::move(node));
        const Token &c = cur();
        if (is_op("(")) {
            parse_call_args(*e);
        } else if ((c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Int || c.type == Tok::Float ||
                    is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail("You cannot chain multiple tests with is", c.line);
            DepthGuard g(*this);
            e->kids.push_back(parse_postfix(parse_primary()));
            e->npos = 1;
        }
        if (!negated) return e;
        auto n = make(EK::Not, line);
        n->kids.push_back(std::move(e));
        return n;
    }

    // --- name analysis -------------------------------------------------------------
    static bool refs(const Expr *e, int sym) {
        if (!e) return false;
        if (e->kind == EK::Name && e->sym == sym) return true;
        if (refs(e->dyn_args.get(), sym) || refs(e->dyn_kwargs.get(), sym)) return true;
        for (const auto &k : e->kids)
            if (refs(k.get(), sym)) return true;
        return false;
    }

    static bool refs(const Body &body, int sym) {
        for (const auto &s : body) {
            if (refs(s->expr.get(), sym) || refs(s->cond.get(), sym)) return true;
            for (const auto &c : s->conds)
                if (refs(c.get(), sym)) return true;
            for (const auto &b : s->bodies)
                if (refs(b, sym)) return true;
            for (const auto &d : s->defaults)
                if (refs(d.get(), sym)) return true;
            for (const auto &v : s->with_values)
                if (refs(v.get(), sym)) return true;
            if (s->kind == SK::SetNs && s->sym == sym) return true;
            if (refs(s->body, sym) || refs(s->else_body, sym)) return true;
        }
        return false;
    }
};

}  // namespace

bool parse(const std::vector<Token> &tokens, Program &prog, std::string &err) {
    try {
        Parser(tokens, prog).run();
        return true;
    } catch (const ParseError &e) {
        err = "line " + std::to_string(e.line) + ": " + e.msg;
        return false;
    }
}

}  // namespace vlm::jinja
