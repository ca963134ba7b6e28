#!/usr/bin/env python3
"""Layering checks for the source tree; exits 1 when one fails.

Each check is one function `check_<name>(root) -> list of problems` listed in
CHECKS; add a check by writing such a function and listing it. Shared pieces:
strip_c() blanks C comments, strings and preprocessor lines, and
find_cycles() returns the cycles of a directed graph {node: {node: why}}.

  runtime-includes
             model_runtime/<layer>/ and kernels/: every #include "layer/f.h"
             points to the same layer or a lower one (RUNTIME_RANKS), so no
             include cycle between folders can form; kernels/ includes
             nothing of the runtime but core/.
  ngx-calls  ngx_module/*.c: no call cycle among the files. A file depends on
             another when it names (calls, or takes the address of) a
             function defined there without `static`. The lower files (cache,
             ipc, image, util) report back through a {handler, data} stored
             with the operation, as nginx's subrequests and resolver do.

Usage: scripts/check-layers.py [check ...]     (default: all)
       scripts/check-layers.py --graph       (ngx_module file -> file edges)
       scripts/check-layers.py --self-test   (the checker finds a planted cycle)
Standard library only.
"""
import os
import re
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip_c(text):
    """C source with comments, string and character literals and
    preprocessor lines replaced by blanks (newlines kept, so line numbers
    still match)."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":
            # a directive, with its backslash-continued lines
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append(" \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
            continue
        if c == "\n":
            line_start = True
        out.append(c)
        i += 1
    return "".join(out)


def c_functions(code):
    """(name, is_static) of each function defined in stripped C code: an
    identifier at brace depth 0, followed by a parenthesised list, then '{'."""
    found = []
    depth = 0
    decl_start = 0          # where the current top-level declaration began
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                decl_start = i + 1
        elif c == ";" and depth == 0:
            decl_start = i + 1
        elif depth == 0 and (c.isalpha() or c == "_"):
            m = IDENT.match(code, i)
            name = m.group(0)
            j = m.end()
            while j < n and code[j].isspace():
                j += 1
            if j < n and code[j] == "(":
                level, k = 0, j
                while k < n:
                    if code[k] == "(":
                        level += 1
                    elif code[k] == ")":
                        level -= 1
                        if level == 0:
                            break
                    k += 1
                k += 1
                while k < n and code[k].isspace():
                    k += 1
                if k < n and code[k] == "{":
                    specifiers = IDENT.findall(code[decl_start:i])
                    found.append((name, "static" in specifiers))
                    i = k
                    continue
            i = m.end()
            continue
        i += 1
    return found


def find_cycles(graph):
    """The strongly connected components with more than one node (each one
    holds at least one cycle), as sorted lists; graph is {node: {node: x}}."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                result.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def c_call_graph(paths):
    """{file: {other file: sorted function names}} for the given C files:
    file -> other when file names a non-static function defined in other and
    not in itself."""
    codes, defined, owner = {}, {}, {}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            code = strip_c(f.read())
        name = os.path.basename(path)
        codes[name] = code
        defined[name] = set()
        for func, static in c_functions(code):
            defined[name].add(func)
            if not static:
                owner.setdefault(func, set()).add(name)
    graph = {}
    for name, code in codes.items():
        edges = {}
        for ident in set(IDENT.findall(code)) - defined[name]:
            for other in owner.get(ident, ()):
                edges.setdefault(other, set()).add(ident)
        graph[name] = {k: sorted(v) for k, v in edges.items()}
    return graph


def report_cycles(graph, label):
    problems = []
    for comp in find_cycles(graph):
        lines = ["%s: call cycle among %s:" % (label, ", ".join(comp))]
        for a in comp:
            for b in sorted(graph[a]):
                if b in comp:
                    lines.append("    %s -> %s (%s)" % (a, b, ", ".join(graph[a][b])))
        problems.append("\n".join(lines))
    return problems


def ngx_call_graph(root):
    folder = os.path.join(root, "ngx_module")
    return c_call_graph(sorted(os.path.join(folder, f)
                               for f in os.listdir(folder) if f.endswith(".c")))


def check_ngx_calls(root):
    """ngx_module/*.c: the file-level call graph has no cycle."""
    return report_cycles(ngx_call_graph(root), "ngx_module")


# Rank of each folder: a file may include its own folder and lower ranks.
# kernels/ is the CUDA backend: beside backend/, and it sees only core/.
RUNTIME_RANKS = {
    "core": 0, "util": 0, "ipc": 0,
    "text": 1, "image": 1,
    "model": 2, "backend": 2,
    "generate": 3,
    "tasks": 4,
    "serve": 5,
    "tools": 6, "bench": 6,
}
KERNELS_MAY_INCLUDE = {"core"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = (".c", ".cpp", ".h", ".cu", ".cuh")


def sources(root, top):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for f in sorted(files):
            if f.endswith(SOURCES):
                yield os.path.join(dirpath, f)


def quoted_includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for m in INCLUDE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        yield line, m.group(1)


def check_runtime_includes(root):
    """model_runtime/ and kernels/: includes point to the same layer or a lower
    one (RUNTIME_RANKS), so no include cycle between folders can form;
    kernels/ includes nothing of the runtime but core/."""
    errors = []
    for path in sources(root, "model_runtime"):
        rel = os.path.relpath(path, os.path.join(root, "model_runtime"))
        layer = rel.split(os.sep)[0]
        if layer not in RUNTIME_RANKS:
            errors.append(f"model_runtime/{rel}: folder '{layer}' has no rank in check-layers.py")
            continue
        for line, inc in quoted_includes(path):
            target = inc.split("/")[0]
            if "/" not in inc:
                # a bare name: a header of kernels/ (the cuda backend) or of ipc/
                if os.path.exists(os.path.join(root, "kernels", inc)):
                    target = "kernels"
                elif layer == "ipc":
                    continue   # C, compiled into nginx with its own include path
                else:
                    errors.append(f"model_runtime/{rel}:{line}: write \"{inc}\" as \"<layer>/{inc}\"")
                    continue
            if target == "kernels":
                # the cuda backend sits beside backend/ (rank 2): make_backend
                # and the programs above it may name it
                if layer != "backend" and RUNTIME_RANKS[layer] <= 2:
                    errors.append(f"model_runtime/{rel}:{line}: {layer}/ includes kernels/ "
                                  f"(\"{inc}\"); only backend/ and layers above it may")
                continue
            if target not in RUNTIME_RANKS:
                errors.append(f"model_runtime/{rel}:{line}: include \"{inc}\": unknown layer")
            elif RUNTIME_RANKS[target] > RUNTIME_RANKS[layer] or (
                    RUNTIME_RANKS[target] == RUNTIME_RANKS[layer] and target != layer):
                errors.append(f"model_runtime/{rel}:{line}: {layer}/ (rank {RUNTIME_RANKS[layer]}) "
                              f"includes \"{inc}\" (rank {RUNTIME_RANKS[target]}): points up or sideways")
    for path in sources(root, "kernels"):
        rel = os.path.relpath(path, root)
        for line, inc in quoted_includes(path):
            if "/" not in inc or inc.startswith(("emu/", "../")):
                continue   # kernels' own headers
            if inc.split("/")[0] not in KERNELS_MAY_INCLUDE:
                errors.append(f"{rel}:{line}: kernels/ includes \"{inc}\"; only core/ is allowed")
    return errors


CHECKS = {
    "runtime-includes": check_runtime_includes,
    "ngx-calls": check_ngx_calls,
}


def self_test():
    """The checker itself: a cycle through a function pointer is found, a
    static helper of the same name elsewhere is not an edge, a chain passes."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "ngx_module"))

        def write(name, text):
            with open(os.path.join(tmp, "ngx_module", name), "w") as f:
                f.write(text)

        write("a.c", '#include "x.h"\n/* b_run() in a comment */\nvoid\na_top(void)\n'
                     '{\n    b_run("a_top()");\n}\n\nstatic void\nhelper(void)\n{\n}\n')
        write("b.c", "int\nb_run(const char *s)\n{\n    return c_leaf(1);\n}\n")
        write("c.c", "static int\nhelper(int x)\n{\n    return x;\n}\n\nint\n"
                     "c_leaf(int x)\n{\n    return helper(x);\n}\n")
        ok = check_ngx_calls(tmp) == []
        write("c.c", "static void (*h)(void) = a_top;\n\nint\nc_leaf(int x)\n{\n"
                     "    return x;\n}\n")
        found = check_ngx_calls(tmp)
        ok = ok and len(found) == 1 and "a.c, b.c, c.c" in found[0] and "(a_top)" in found[0]
    print("self-test: %s" % ("ok" if ok else "FAILED"))
    return ok


def main(argv):
    if "--self-test" in argv:
        return 0 if self_test() else 1
    if "--graph" in argv:
        graph = ngx_call_graph(ROOT)
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print("%s -> %s (%s)" % (a, b, ", ".join(graph[a][b])))
        return 0
    names = [a for a in argv if not a.startswith("--")] or list(CHECKS)
    failed = False
    for name in names:
        if name not in CHECKS:
            print("check-layers: unknown check %r (have: %s)" % (name, ", ".join(CHECKS)))
            return 2
        problems = CHECKS[name](ROOT)
        for p in problems:
            print(p)
        print("check-layers: %s %s" % (name, "FAILED" if problems else "ok"))
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
