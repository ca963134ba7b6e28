#!/usr/bin/env python3
"""Run llama.cpp's own convert_hf_to_gguf.py on vlm's benchmark model.

usage: convert_glm4v.py LLAMA_CPP_DIR [convert_hf_to_gguf.py arguments...]

The benchmark model (mkmodel: real GLM-4.6V-Flash widths, random weights) borrows
the test fixture's tokenizer (tests/fixtures/models/tiny-flash: a small BPE vocabulary
with GLM-4's special tokens and GLM-4's split regex). The converter identifies a BPE
pre-tokenizer by hashing the token ids of a fixed text, and refuses an unknown hash;
a small vocabulary never matches the real GLM-4 hashes. This wrapper (our code; it
copies nothing from llama.cpp) keeps the converter's own check and only when that
check refuses, answers "glm4" if the tokenizer's pre-tokenizer is exactly GLM-4's
(the Split regex below, then ByteLevel without its own regex): the regex llama.cpp's
glm4 pre-type implements. Any other tokenizer is still refused.

The text decode / prefill speed measured afterwards does not depend on the tokenizer:
llama-bench feeds token ids.
"""
import json
import os
import runpy
import sys
from pathlib import Path

GLM4_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def is_glm4_pretokenizer(model_dir: Path) -> bool:
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text())["pre_tokenizer"]
    except (OSError, KeyError, ValueError):
        return False
    if not pre or pre.get("type") != "Sequence":
        return False
    steps = pre.get("pretokenizers", [])
    return (len(steps) == 2 and steps[0].get("type") == "Split"
            and steps[0].get("pattern", {}).get("Regex") == GLM4_SPLIT
            and steps[1].get("type") == "ByteLevel" and steps[1].get("use_regex") is False)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = Path(sys.argv[1]).resolve()
    script = src / "convert_hf_to_gguf.py"
    sys.path.insert(0, str(src))
    if "NO_LOCAL_GGUF" not in os.environ:
        sys.path.insert(1, str(src / "gguf-py"))
    import conversion.base as base  # noqa: E402  (the converter's own module)

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            if is_glm4_pretokenizer(Path(self.dir_model)):
                print("convert_glm4v: pre-tokenizer hash unknown (small fixture vocabulary); "
                      "its split regex is GLM-4's: tokenizer.ggml.pre = glm4", file=sys.stderr)
                return "glm4"
            raise

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [str(script)] + sys.argv[2:]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
