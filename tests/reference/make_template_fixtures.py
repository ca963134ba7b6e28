#!/usr/bin/env python3
"""make_template_fixtures.py: renders every chat template in tests/fixtures/chat_templates/ (plus the tokenizer
fixture's chat_template.jinja) over every conversation in tests/fixtures/chat_templates/conversations.json with
transformers' own apply_chat_template(tokenize=False), and writes what it returns, or the exception it raises, to
tests/fixtures/chat_templates/expected/<template>.json. tests/unit/test_jinja.cpp renders the same pairs with
vlm_jinja and must match byte for byte (an error case must fail in ours too). It also renders the small
templates of jinja_snippets.py with transformers' compiled environment into
tests/fixtures/chat_templates/snippets.json.

Deterministic: strftime_now() is pinned to the corpus' fixed_time. Needs only transformers, tokenizers and jinja2
from requirements.txt (no torch):
    python3 -m venv build/venv-jinja
    build/venv-jinja/bin/pip install transformers==5.23.0 tokenizers==0.23.3 jinja2==3.1.6
    build/venv-jinja/bin/python tests/reference/make_template_fixtures.py
"""
import datetime as _dt
import glob
import hashlib
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIR = os.path.join(ROOT, "tests", "fixtures", "chat_templates")
EXTRA_TEMPLATES = {"vlm-tokenizer-fixture": os.path.join(ROOT, "tests", "fixtures", "tokenizer", "chat_template.jinja")}
FORMAT_VERSION = 1


def templates():
    found = {}
    for path in sorted(glob.glob(os.path.join(DIR, "*.jinja"))):
        found[os.path.basename(path)[: -len(".jinja")]] = path
    found.update(EXTRA_TEMPLATES)
    return found


def pin_clock(fixed):
    import transformers.utils.chat_template_utils as ctu

    when = _dt.datetime.fromisoformat(fixed)

    class FixedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return when

    ctu.datetime = FixedDatetime


def make_tokenizer(special_tokens):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(ROOT, "tests", "fixtures", "tokenizer", "tokenizer.json"), **special_tokens)


def render_case(tok, template, conv, tools):
    kwargs = dict(conv.get("kwargs", {}))
    try:
        out = tok.apply_chat_template(conv["messages"], tools=tools if conv.get("tools") else None,
                                      chat_template=template, tokenize=False, **kwargs)
        return {"output": out}
    except Exception as e:  # what the template raised (TemplateError, UndefinedError, TypeError, ...)
        return {"error": type(e).__name__ + ": " + str(e)}


def make_snippets(versions):
    import transformers.utils.chat_template_utils as ctu

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jinja_snippets

    cases = []
    for src, extra, unsupported in jinja_snippets.S:
        ctx = dict(jinja_snippets.CONTEXT)
        ctx.update(extra)
        case = {"template": src}
        if extra:
            case["context"] = extra   # merged over the document's "context"
        if unsupported:
            case["unsupported"] = True
        else:
            try:
                case["output"] = ctu._compile_jinja_template(src).render(**ctx)
            except Exception as e:
                case["error"] = type(e).__name__ + ": " + str(e)
        cases.append(case)
    doc = dict(versions, format_version=FORMAT_VERSION, context=jinja_snippets.CONTEXT, cases=cases)
    with open(os.path.join(DIR, "snippets.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return len(cases)


def main():
    import jinja2
    import tokenizers
    import transformers

    with open(os.path.join(DIR, "conversations.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    pin_clock(corpus["fixed_time"])
    tok = make_tokenizer(corpus["special_tokens"])
    out_dir = os.path.join(DIR, "expected")
    os.makedirs(out_dir, exist_ok=True)
    only = set(sys.argv[1:])
    n_ok = n_err = 0
    for name, path in templates().items():
        if only and name not in only:
            continue
        with open(path, encoding="utf-8", newline="") as f:
            template = f.read()
        cases = {}
        for conv in corpus["conversations"]:
            cases[conv["name"]] = render_case(tok, template, conv, corpus["tools"])
            if "error" in cases[conv["name"]]:
                n_err += 1
            else:
                n_ok += 1
        doc = {
            "format_version": FORMAT_VERSION,
            "transformers": transformers.__version__,
            "jinja2": jinja2.__version__,
            "tokenizers": tokenizers.__version__,
            "template": os.path.relpath(path, ROOT),
            "template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
            "cases": cases,
        }
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
    n_snippets = make_snippets({"transformers": transformers.__version__, "jinja2": jinja2.__version__})
    print(f"{n_ok} rendered, {n_err} raised; {n_snippets} snippets")


if __name__ == "__main__":
    main()
