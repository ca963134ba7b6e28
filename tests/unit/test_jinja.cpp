// test_jinja.cpp: vlm_jinja (model_runtime/text/jinja) against transformers.
//  - parity: every template in fixtures/chat_templates/ over every conversation of conversations.json must
//    render byte-identically to transformers' apply_chat_template (expected/*.json), or fail where it raised;
//  - snippets: 400+ one-construct templates rendered by transformers' jinja2 environment (snippets.json);
//  - hand-written cases for each construct, each load and render error (with its line), every limit,
//    make_chat_context, read_chat_template's file precedence, and concurrent renders of one template.
// Fixtures: tests/reference/make_template_fixtures.py (transformers 5.23.0, jinja2 3.1.6).
#include "text/jinja/chat_template.h"

#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro
#include "fixture_files.h"

using vlm::jinja::ChatTemplate;
using vlm::jinja::Limits;
using vlm::jinja::RenderOptions;

namespace {

using vlm_test::fixtures;
using vlm_test::read_text;

json_t *load_json(const std::string &path) {
    json_error_t e;
    json_t *j = json_load_file(path.c_str(), JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != nullptr, "%s: %s", path.c_str(), e.text);
    return j;
}

// The corpus' pinned strftime_now() clock: 2025-06-07T09:05:03.
std::tm fixed_time() {
    std::tm t{};
    ck_assert(strptime("2025-06-07T09:05:03", "%Y-%m-%dT%H:%M:%S", &t) != nullptr);
    return t;
}

// Renders `src` with the JSON object `ctx_json`; returns true and the output, or false and the error.
bool render(const std::string &src, const char *ctx_json, std::string &out, std::string &err,
            const Limits &lim = Limits()) {
    auto t = ChatTemplate::load(src, err, lim);
    if (!t) return false;
    json_error_t je;
    json_t *ctx = json_loads(ctx_json, 0, &je);
    ck_assert_msg(ctx != nullptr, "bad test context %s: %s", ctx_json, je.text);
    const std::tm now = fixed_time();
    RenderOptions opt;
    opt.now = &now;
    const bool ok = t->render(ctx, out, err, opt);
    json_decref(ctx);
    return ok;
}

std::string jstr(const json_t *s) { return std::string(json_string_value(s), json_string_length(s)); }

std::string first_diff(const std::string &want, const std::string &got) {
    size_t i = 0;
    while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
    const size_t from = i > 40 ? i - 40 : 0;
    return "at byte " + std::to_string(i) + ": want \"" + want.substr(from, 80) + "\" got \"" +
           got.substr(from, 80) + "\"";
}

// ---------------------------------------------------------------------------------------------
// Parity with transformers over the real-template corpus.

START_TEST(parity_with_transformers_corpus) {
    const std::string dir = fixtures() + "/chat_templates";
    json_t *corpus = load_json(dir + "/conversations.json");
    const json_t *convs = json_object_get(corpus, "conversations");
    const json_t *special = json_object_get(corpus, "special_tokens");
    const json_t *tools = json_object_get(corpus, "tools");
    const std::tm now = fixed_time();
    RenderOptions opt;
    opt.now = &now;

    std::vector<std::string> files;
    DIR *d = opendir((dir + "/expected").c_str());
    ck_assert_msg(d != nullptr, "no %s/expected", dir.c_str());
    while (dirent *e = readdir(d)) {
        const std::string n = e->d_name;
        if (n.size() > 5 && n.substr(n.size() - 5) == ".json") files.push_back(n);
    }
    closedir(d);
    ck_assert_uint_ge(files.size(), 60);

    int n_templates = 0, n_pairs = 0, n_rendered = 0, n_raised = 0, n_bad = 0;
    for (const std::string &f : files) {
        json_t *exp = load_json(dir + "/expected/" + f);
        const std::string tpath =
            fixtures() + "/../../" + json_string_value(json_object_get(exp, "template"));
        std::string err;
        auto tmpl = ChatTemplate::load(read_text(tpath), err);
        ++n_templates;
        const json_t *cases = json_object_get(exp, "cases");
        for (size_t i = 0; i < json_array_size(convs); ++i) {
            const json_t *conv = json_array_get(convs, i);
            const char *name = json_string_value(json_object_get(conv, "name"));
            const json_t *want = json_object_get(cases, name);
            ck_assert_msg(want != nullptr, "%s: no case %s", f.c_str(), name);
            ++n_pairs;
            std::string out;
            bool ok = false;
            if (tmpl) {
                const bool with_tools = json_is_true(json_object_get(conv, "tools"));
                json_t *ctx = vlm::jinja::make_chat_context(json_object_get(conv, "messages"),
                                                            with_tools ? tools : nullptr, special,
                                                            json_object_get(conv, "kwargs"), err);
                ck_assert_msg(ctx != nullptr, "%s", err.c_str());
                ok = tmpl->render(ctx, out, err, opt);
                json_decref(ctx);
            }
            const json_t *want_out = json_object_get(want, "output");
            if (want_out) {
                ++n_rendered;
                const std::string w = jstr(want_out);
                if (!ok || out != w) {
                    ++n_bad;
                    std::fprintf(stderr, "MISMATCH %s / %s: %s\n", f.c_str(), name,
                                 ok ? first_diff(w, out).c_str() : err.c_str());
                }
            } else {
                ++n_raised;
                if (ok) {
                    ++n_bad;
                    std::fprintf(stderr, "MISMATCH %s / %s: transformers raised %s, we rendered\n", f.c_str(), name,
                                 json_string_value(json_object_get(want, "error")));
                }
            }
        }
        json_decref(exp);
    }
    std::fprintf(stderr, "parity: %d templates x %zu conversations = %d pairs (%d rendered, %d raised), %d mismatches\n",
                 n_templates, json_array_size(convs), n_pairs, n_rendered, n_raised, n_bad);
    ck_assert_int_eq(n_bad, 0);
    json_decref(corpus);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// jinja2 semantics, one construct at a time.

START_TEST(snippets_match_jinja2) {
    json_t *doc = load_json(fixtures() + "/chat_templates/snippets.json");
    const json_t *base = json_object_get(doc, "context");
    const json_t *cases = json_object_get(doc, "cases");
    const std::tm now = fixed_time();
    RenderOptions opt;
    opt.now = &now;
    int bad = 0;
    for (size_t i = 0; i < json_array_size(cases); ++i) {
        const json_t *c = json_array_get(cases, i);
        const std::string src = jstr(json_object_get(c, "template"));
        json_t *ctx = json_deep_copy(base);
        if (const json_t *extra = json_object_get(c, "context")) json_object_update(ctx, const_cast<json_t *>(extra));
        std::string out, err;
        auto t = ChatTemplate::load(src, err);
        const bool ok = t && t->render(ctx, out, err, opt);
        json_decref(ctx);
        if (json_is_true(json_object_get(c, "unsupported"))) {
            if (ok || err.find("unsupported") == std::string::npos) {
                ++bad;
                std::fprintf(stderr, "snippet %zu %s: want an \"unsupported\" error, got %s\n", i, src.c_str(),
                             ok ? out.c_str() : err.c_str());
            }
        } else if (const json_t *w = json_object_get(c, "output")) {
            if (!ok || out != jstr(w)) {
                ++bad;
                std::fprintf(stderr, "snippet %zu %s: %s\n", i, src.c_str(),
                             ok ? first_diff(jstr(w), out).c_str() : err.c_str());
            }
        } else if (ok) {
            ++bad;
            std::fprintf(stderr, "snippet %zu %s: jinja2 raised %s, we rendered \"%s\"\n", i, src.c_str(),
                         json_string_value(json_object_get(c, "error")), out.c_str());
        }
    }
    std::fprintf(stderr, "snippets: %zu, %d mismatches\n", json_array_size(cases), bad);
    ck_assert_uint_ge(json_array_size(cases), 400);
    ck_assert_int_eq(bad, 0);
    json_decref(doc);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Hand-written expectations (checked against jinja2 3.1.6 by hand), one per construct.

struct Case {
    const char *tmpl;
    const char *ctx;
    const char *want;
};

const Case kConstructs[] = {
    // whitespace control: trim_blocks eats the newline after %}, lstrip_blocks the indent before {%
    {"{% if true %}\n  x\n  {% endif %}\ny", "{}", "  x\ny"},
    {"a  {%- if true -%}  b  {%- endif %}\n", "{}", "ab"},
    {"{{ 'a' }}  \n  {{- 'b' -}}  c", "{}", "abc"},
    {"  {%+ if true %}x{% endif %}", "{}", "  x"},
    {"{# comment #}\n{#- c -#} z {{ '{{' }}{% raw %}{{ raw }}{% endraw %}", "{}", "z {{{{ raw }}"},
    {"a\r\nb\n", "{}", "a\nb"},   // newlines normalised, one trailing newline dropped
    // literals and output
    {"{{ [1, 'a', none, true, 1.5, {'k': (2,)}] }}", "{}", "[1, 'a', None, True, 1.5, {'k': (2,)}]"},
    {"{{ 1e16 }} {{ 1e15 }} {{ 0.1 + 0.2 }} {{ 1 / 2 }} {{ 7 // -2 }} {{ -7 % 3 }}", "{}",
     "1e+16 1000000000000000.0 0.30000000000000004 0.5 -4 2"},
    {"{{ 'a\\tb' ~ 1 ~ none }}{{ \"it's\" }}{{ ['it\\'s'] }}", "{}", "a\tb1Noneit's[\"it's\"]"},
    // if / elif / else, and/or/not, conditional expressions
    {"{% if x > 1 %}A{% elif x %}B{% else %}C{% endif %}{{ 'y' if x == 2 else 'n' }}{{ x and 'T' }}{{ 0 or 'F' }}",
     "{\"x\": 1}", "BnTF"},
    // for: loop.*, else, filter, unpacking, break / continue
    {"{% for i in l %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex0 }};{% endfor %}",
     "{\"l\": [7, 8]}", "1TrueFalse21;2FalseTrue20;"},
    {"{% for i in l if i > 9 %}{{ i }}{% else %}empty{% endfor %}", "{\"l\": [1]}", "empty"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", "{\"d\": {\"b\": 1, \"a\": 2}}", "b=1,a=2,"},
    {"{% for i in l %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "{\"l\": [1, 2, 3, 4, 5]}", "13"},
    {"{% for i in l %}{{ loop.previtem }}-{{ loop.nextitem }}{{ loop.cycle('a', 'b') }} {% endfor %}", "{\"l\": [1, 2]}",
     "-2a 1-b "},
    // set, namespace, scoping (a loop body's assignments die with the iteration)
    {"{% set a, b = 1, 2 %}{% set t = 0 %}{% for i in [1] %}{% set t = 5 %}{% endfor %}{{ a }}{{ b }}{{ t }}", "{}", "120"},
    {"{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "{}", "6"},
    {"{% set s %}  x {{ 1 }}{% endset %}[{{ s }}]{% set u | trim | upper %} y {% endset %}{{ u }}", "{}", "[  x 1]Y"},
    // macros, call blocks, filter blocks, with, generation
    {"{% macro m(a, b=a ~ '!') %}{{ a }}{{ b }}{{ varargs }}{% endmacro %}{{ m(1) }}|{{ m(1, 2, 3) }}|{{ m(b=0, a=9) }}",
     "{}", "11!()|12(3,)|90()"},
    {"{% macro w(x) %}<{{ caller(x * 2) }}>{% endmacro %}{% call(v) w(21) %}{{ v }}{% endcall %}", "{}", "<42>"},
    {"{% filter upper %}ab{% endfilter %}{% with q = 3 %}{{ q }}{% endwith %}{% generation %}g{% endgeneration %}", "{}",
     "AB3g"},
    // filters
    {"{{ '  x  '|trim }}|{{ d|tojson }}|{{ l|length }}|{{ 5|string }}|{{ 'Ab'|lower }}{{ 'Ab'|upper }}", "{\"d\": {\"é\": [1, 2.5, null]}, \"l\": [1, 2]}",
     "x|{\"é\": [1, 2.5, null]}|2|5|abAB"},
    {"{{ 'a-b'|replace('-', '+') }}|{{ l|join(',') }}|{{ l|first }}{{ l|last }}|{{ n|default('d') }}|{{ d|items|list }}",
     "{\"l\": [1, 2], \"d\": {\"k\": 1}}", "a+b|1,2|12|d|[('k', 1)]"},
    {"{{ m|selectattr('role', 'equalto', 'user')|map(attribute='c')|join }}|{{ m|rejectattr('role', 'eq', 'user')|list|length }}",
     "{\"m\": [{\"role\": \"user\", \"c\": \"a\"}, {\"role\": \"system\", \"c\": \"b\"}, {\"role\": \"user\", \"c\": \"c\"}]}", "ac|1"},
    {"{{ d|tojson(indent=2) }}|{{ [3, 1, 2]|sort|list }}|{{ [1, 1, 2]|unique|list }}|{{ 2.5|round }}|{{ '7'|int + 1 }}",
     "{\"d\": {\"a\": [1]}}", "{\n  \"a\": [\n    1\n  ]\n}|[1, 2, 3]|[1, 2]|2.0|8"},
    // tests
    {"{{ x is defined }}{{ y is defined }}{{ n is none }}{{ s is string }}{{ d is mapping }}{{ l is iterable }}"
     "{{ x is number }}{{ f is sameas false }}{{ 2 in l }}{{ x is divisibleby 3 }}",
     "{\"x\": 3, \"n\": null, \"s\": \"\", \"d\": {}, \"l\": [2], \"f\": false}",
     "TrueFalseTrueTrueTrueTrueTrueTrueTrueTrue"},
    // slicing and str methods
    {"{{ s[1:] }}{{ s[::-1] }}{{ l[-1] }}{{ s[0] }}|{{ 'a b'.split() }}{{ ' x '.strip() }}{{ s.startswith('h') }}"
     "{{ s.endswith('o') }}{{ 'a,b'.split(',')[1] }}",
     "{\"s\": \"héllo\", \"l\": [1, 2]}", "élloolléh2h|['a', 'b']xTrueTrueb"},
    // the variables transformers passes, message content as a string or a list
    {"{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
     "{% if p.type == 'image' %}<img>{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ bos_token }}{% endif %}",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi \"}, {\"role\": \"user\", \"content\": [{\"type\": \"image\"},"
     " {\"type\": \"text\", \"text\": \"x\"}]}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\"}",
     "hi <img>x<s>"},
    // globals
    {"{{ strftime_now('%d %b %Y') }}|{{ range(3)|list }}|{{ dict(a=1) }}|{{ namespace(a=1).a }}", "{}",
     "07 Jun 2025|[0, 1, 2]|{'a': 1}|1"},
};

START_TEST(constructs) {
    for (const Case &c : kConstructs) {
        std::string out, err;
        const bool ok = render(c.tmpl, c.ctx, out, err);
        ck_assert_msg(ok, "%s: %s", c.tmpl, err.c_str());
        ck_assert_msg(out == c.want, "%s: want \"%s\" got \"%s\"", c.tmpl, c.want, out.c_str());
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Errors: each names its line; unsupported constructs fail at load, template errors at render.

struct ErrCase {
    const char *tmpl;
    bool at_load;
    const char *contains;   // in the message, after "line N: "
    int line;
};

const ErrCase kErrors[] = {
    {"a\n{% if x %}\nb", true, "unexpected end of template", 3},
    {"{% endif %}", true, "unknown tag 'endif'", 1},
    {"{% foo %}", true, "unknown tag 'foo'", 1},
    {"{{ x", true, "expected end of print statement", 1},
    {"{{ (1 }}", true, "unexpected '}'", 1},
    {"\n{{ 'abc }}", true, "unexpected char", 2},
    {"{# open", true, "Missing end of comment tag", 1},
    {"{% raw %}x", true, "Missing end of raw directive", 1},
    {"{% macro m(a=1, b) %}{% endmacro %}", true, "non-default argument", 1},
    {"{% set 1 = 2 %}", true, "can't assign", 1},
    {"{% break %}", true, "outside a loop", 1},
    {"\n\n{{ x|nosuch }}", true, "No filter named 'nosuch'", 3},
    {"{{ x is nosuch }}", true, "No test named 'nosuch'", 1},
    {"{{ x is defined is defined }}", true, "cannot chain", 1},
    {"{% include 'a.jinja' %}", true, "unsupported: the 'include' tag", 1},
    {"x\n{% extends 'b' %}", true, "unsupported: the 'extends' tag", 2},
    {"{% import 'm' as m %}", true, "unsupported: the 'import' tag", 1},
    {"{% do x %}", true, "unsupported: the 'do' tag", 1},
    {"{% for i in l recursive %}{% endfor %}", true, "unsupported: recursive", 1},
    {"{{ l|batch(2) }}", true, "unsupported: the 'batch' filter", 1},
    {"{{ l|groupby('a') }}", true, "unsupported: the 'groupby' filter", 1},
    {"{{ s.encode('utf-8') }}", true, "unsupported: the Python method .encode()", 1},
    {"{{ lipsum() }}", true, "unsupported: the 'lipsum' global", 1},
    {"{{ '\\N{BULLET}' }}", true, "unsupported: \\N", 1},
    {"{{ 99999999999999999999 }}", true, "unsupported: integer literal", 1},
    {"{{ café }}", true, "unsupported: non-ASCII", 1},
    {"{% if true %}\n{{ raise_exception('Conversation roles must alternate') }}{% endif %}", false,
     "TemplateError: Conversation roles must alternate", 2},
    {"{{ x.y.z }}", false, "UndefinedError", 1},
    {"{{ nope + 1 }}", false, "UndefinedError: 'nope' is undefined", 1},
    {"\n{{ 'a' + 1 }}", false, "TypeError", 2},
    {"{{ 1 // 0 }}", false, "ZeroDivisionError", 1},
    {"{{ l.append(1) }}", false, "SecurityError", 1},
    {"{% set ns = namespace() %}{% set ns._p = 1 %}", false, "underscore-prefixed", 1},
    {"{{ nope|tojson }}", false, "not JSON serializable", 1},
    {"{% for a, b in [[1, 2, 3]] %}{% endfor %}", false, "cannot unpack", 1},
    {"{% macro m() %}{% endmacro %}{{ m(1) }}", false, "takes not more than 0 argument", 1},
    {"{{ range(1000000)|length }}", false, "Range too big", 1},
    {"{{ 9223372036854775807 + 1 }}", false, "unsupported: integer overflow", 1},
    {"{{ '{:>4}'.format(1) }}", false, "unsupported: format spec", 1},
    // raised while formatting a value, below any expression: the statement's line
    {"{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}\n{{ ns.v }}", false,
     "nested too deeply", 2},
};

START_TEST(errors_name_their_line) {
    for (const ErrCase &c : kErrors) {
        std::string err;
        auto t = ChatTemplate::load(c.tmpl, err);
        if (c.at_load) {
            ck_assert_msg(t == nullptr, "%s: loaded, want a load error", c.tmpl);
        } else {
            ck_assert_msg(t != nullptr, "%s: load failed: %s", c.tmpl, err.c_str());
            std::string out;
            json_t *ctx = json_pack("{s:i, s:[i], s:s}", "x", 1, "l", 1, "s", "s");
            ck_assert_msg(!t->render(ctx, out, err), "%s: rendered \"%s\", want an error", c.tmpl, out.c_str());
            ck_assert_msg(out.empty(), "%s: a failed render left output", c.tmpl);
            json_decref(ctx);
        }
        const std::string prefix = "line " + std::to_string(c.line) + ": ";
        ck_assert_msg(err.compare(0, prefix.size(), prefix) == 0, "%s: want \"%s...\", got \"%s\"", c.tmpl,
                      prefix.c_str(), err.c_str());
        ck_assert_msg(err.find(c.contains) != std::string::npos, "%s: want \"%s\" in \"%s\"", c.tmpl, c.contains,
                      err.c_str());
    }
    std::string err;
    ck_assert(ChatTemplate::load("\xff\xfe", err) == nullptr);
    ck_assert_msg(err.find("UTF-8") != std::string::npos, "%s", err.c_str());
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Limits: hostile templates fail cleanly, quickly, without leaks or crashes.

START_TEST(limits_stop_hostile_templates) {
    std::string out, err;
    Limits small;
    small.max_template_bytes = 100;
    ck_assert(ChatTemplate::load(std::string(101, 'x'), err, small) == nullptr);
    ck_assert_msg(err.find("limit") != std::string::npos, "%s", err.c_str());

    struct Bomb {
        const char *tmpl;
        const char *contains;
    } bombs[] = {
        {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations"},
        {"{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "nesting exceeds"},
        {"{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "limit"},
        {"{{ 'x' * 100000000000 }}", "size limit"},
        {"{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}", "bytes"},
        {"{% set l = [1, 2] %}{% for i in range(100000) %}{% for j in range(100000) %}{% if j in l %}{% endif %}"
         "{% endfor %}{% endfor %}", "loop iterations"},
        {"{% set l = range(90000)|list %}{% for i in range(2000) %}{% if -1 in l %}{% endif %}{% endfor %}", "steps"},
        {"{% set ns = namespace(v=[]) %}{% for i in range(100000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}",
         "nested too deeply"},
    };
    Limits lim;
    lim.max_output_bytes = 1 << 20;
    lim.max_work_bytes = 64 << 20;
    for (const Bomb &b : bombs) {
        const std::clock_t t0 = std::clock();
        ck_assert_msg(!render(b.tmpl, "{}", out, err, lim), "%s: rendered", b.tmpl);
        const double secs = double(std::clock() - t0) / CLOCKS_PER_SEC;
        ck_assert_msg(err.find(b.contains) != std::string::npos, "%s: want \"%s\" in \"%s\"", b.tmpl, b.contains,
                      err.c_str());
        ck_assert_msg(secs < 20, "%s took %.1f s", b.tmpl, secs);
    }

    // Statement and expression nesting is bounded at load.
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += "{% if true %}";
    ck_assert(ChatTemplate::load(deep, err) == nullptr);
    ck_assert_msg(err.find("nesting") != std::string::npos, "%s", err.c_str());
    ck_assert(ChatTemplate::load("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}", err) == nullptr);

    // A reference cycle and a value nested 100000 deep render and are freed (ASan checks the leak and the stack).
    ck_assert(render("{% set ns = namespace() %}{% set ns.me = [ns, {'k': ns}] %}{{ ns.me|length }}", "{}", out, err));
    ck_assert_str_eq(out.c_str(), "2");
    ck_assert_msg(render("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}{% set ns.v = [ns.v] %}{% endfor %}"
                         "{{ ns.v|length }}", "{}", out, err), "%s", err.c_str());
    ck_assert_str_eq(out.c_str(), "1");
}
END_TEST

// ---------------------------------------------------------------------------------------------
// make_chat_context: what apply_chat_template passes.

START_TEST(chat_context_like_transformers) {
    json_error_t je;
    json_t *msgs = json_loads(
        "[{\"role\": \"user\", \"content\": \"q\", \"name\": null},"
        " {\"role\": \"assistant\", \"reasoning\": \"r\", \"content\": \"a\", \"reasoning_content\": null},"
        " {\"role\": \"assistant\", \"content\": \"b\", \"thinking\": \"t\", \"reasoning_content\": \"rc\"}]",
        0, &je);
    json_t *special = json_loads("{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\", \"lstrip\": false},"
                                 " \"pad_token\": null, \"additional_special_tokens\": [\"<x>\"]}", 0, &je);
    json_t *kwargs = json_loads("{\"add_generation_prompt\": true, \"enable_thinking\": false, \"bos_token\": \"B\"}", 0, &je);
    std::string err;
    json_t *ctx = vlm::jinja::make_chat_context(msgs, nullptr, special, kwargs, err);
    ck_assert_msg(ctx != nullptr, "%s", err.c_str());
    std::string out;
    auto t = ChatTemplate::load("{{ messages|tojson }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|"
                                "{{ enable_thinking }}|{{ bos_token }}{{ eos_token }}|{{ pad_token is defined }}|"
                                "{{ additional_special_tokens is defined }}", err);
    ck_assert(t && t->render(ctx, out, err));
    // None-valued keys dropped; reasoning aliased as {"thinking": r, **message, "reasoning_content": r}, where r is
    // the first of reasoning_content / thinking / reasoning and a message's own "thinking" keeps its value
    ck_assert_str_eq(out.c_str(),
                     "[{\"role\": \"user\", \"content\": \"q\"}, "
                     "{\"thinking\": \"r\", \"role\": \"assistant\", \"reasoning\": \"r\", \"content\": \"a\", \"reasoning_content\": \"r\"}, "
                     "{\"thinking\": \"t\", \"role\": \"assistant\", \"content\": \"b\", \"reasoning_content\": \"rc\"}]"
                     "|None|None|True|False|B</s>|False|False");
    json_decref(ctx);
    json_t *not_array = json_string("x");
    ck_assert(vlm::jinja::make_chat_context(not_array, nullptr, nullptr, nullptr, err) == nullptr);
    json_decref(not_array);
    json_t *bad = json_pack("{s:[]}", "tools");
    ck_assert(vlm::jinja::make_chat_context(msgs, nullptr, nullptr, bad, err) == nullptr);
    json_decref(bad);
    json_decref(msgs);
    json_decref(special);
    json_decref(kwargs);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// read_chat_template: transformers 5.23's file precedence.

void write_file(const std::string &path, const std::string &text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

START_TEST(template_file_precedence) {
    char dir_buf[] = "/tmp/vlm-jinja-test.XXXXXX";
    ck_assert(mkdtemp(dir_buf) != nullptr);
    const std::string dir = dir_buf;
    std::string src, origin, err;
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));   // none: true, origin empty
    ck_assert(origin.empty() && src.empty());

    write_file(dir + "/tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"TC\"}]}");
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_str_eq(src.c_str(), "TC");
    write_file(dir + "/chat_template.jinja", "J\n");
    ck_assert(vlm::jinja::read_chat_template(dir + "/", src, origin, err));
    ck_assert_str_eq(src.c_str(), "J\n");
    ck_assert(origin.find("chat_template.jinja") != std::string::npos);
    write_file(dir + "/chat_template.json", "{\"chat_template\": \"JS\"}");
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_str_eq(src.c_str(), "JS");
    write_file(dir + "/processor_config.json", "{\"image_processor\": {}}");
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_str_eq(src.c_str(), "JS");
    write_file(dir + "/processor_config.json", "{\"chat_template\": \"P\"}");
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_str_eq(src.c_str(), "P");
    write_file(dir + "/processor_config.json", "{\"chat_template\": 3}");
    ck_assert(!vlm::jinja::read_chat_template(dir, src, origin, err));
    write_file(dir + "/processor_config.json", "{not json");
    ck_assert(!vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_msg(err.find("processor_config.json") != std::string::npos, "%s", err.c_str());
    unlink((dir + "/processor_config.json").c_str());
    // chat_template.json exists only to hold a template: without one it is refused.
    write_file(dir + "/chat_template.json", "{\"chat_template\": null}");
    ck_assert(!vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_msg(err.find("chat_template.json: no \"chat_template\"") != std::string::npos, "%s", err.c_str());
    // additional_chat_templates/: beside chat_template.json, transformers refuses.
    mkdir((dir + "/additional_chat_templates").c_str(), 0755);
    write_file(dir + "/additional_chat_templates/tool_use.jinja", "TOOL");
    write_file(dir + "/chat_template.json", "{\"chat_template\": \"JS\"}");
    ck_assert(!vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_msg(err.find("additional_chat_templates") != std::string::npos, "%s", err.c_str());
    unlink((dir + "/chat_template.json").c_str());
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));   // chat_template.jinja is the default
    ck_assert_str_eq(src.c_str(), "J\n");
    unlink((dir + "/chat_template.jinja").c_str());
    // Only named templates, none "default": refused (tokenizer_config.json's is not used then).
    ck_assert(!vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_msg(err.find("tool_use.jinja") != std::string::npos, "%s", err.c_str());
    write_file(dir + "/additional_chat_templates/default.jinja", "DEF");
    ck_assert(vlm::jinja::read_chat_template(dir, src, origin, err));
    ck_assert_str_eq(src.c_str(), "DEF");
    ck_assert(origin.find("additional_chat_templates/default.jinja") != std::string::npos);
    for (const char *f : {"/additional_chat_templates/tool_use.jinja", "/additional_chat_templates/default.jinja",
                          "/tokenizer_config.json"})
        unlink((dir + f).c_str());
    rmdir((dir + "/additional_chat_templates").c_str());
    rmdir(dir.c_str());
}
END_TEST

// ---------------------------------------------------------------------------------------------
// One loaded template rendered on several threads at once (vlmd shares it).

START_TEST(concurrent_renders) {
    const std::string src = read_text(fixtures() + "/chat_templates/glm-ocr.jinja");
    std::string err;
    auto t = ChatTemplate::load(src, err);
    ck_assert_msg(t != nullptr, "%s", err.c_str());
    json_error_t je;
    json_t *ctx = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"},"
                             " {\"type\": \"text\", \"text\": \"Describe.\"}]}], \"add_generation_prompt\": true,"
                             " \"enable_thinking\": false}", 0, &je);
    std::string want;
    ck_assert(t->render(ctx, want, err));
    ck_assert_str_eq(want.c_str(),
                     "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>Describe./nothink"
                     "<|assistant|>\n<think></think>\n");
    std::vector<std::thread> threads;
    std::vector<int> bad(4, 0);
    for (int k = 0; k < 4; ++k)
        threads.emplace_back([&, k] {
            std::string out, e;
            for (int i = 0; i < 2000; ++i)
                if (!t->render(ctx, out, e) || out != want) ++bad[static_cast<size_t>(k)];
        });
    for (auto &th : threads) th.join();
    for (int b : bad) ck_assert_int_eq(b, 0);
    json_decref(ctx);
}
END_TEST

}  // namespace

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "jinja", {
        {"jinja", 300, {
            parity_with_transformers_corpus,
            snippets_match_jinja2,
            constructs,
            errors_name_their_line,
            limits_stop_hostile_templates,
            chat_context_like_transformers,
            template_file_precedence,
            concurrent_renders,
        }},
    });
}
