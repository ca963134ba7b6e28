"""make_tokenizer.py: the tiny GLM-4-style tokenizer fixture (tests/fixtures/tokenizer/).

A byte-level BPE trained with the `tokenizers` library on an inline English/Chinese/code corpus,
with GLM-4's pre-tokenizer (Split(regex, isolated) + ByteLevel without its own regex), ByteLevel
decoder, no normalizer and no post-processor, and GLM-4.6V's added tokens at the END of the vocab
in GLM's order. Also writes the chat template and corpus.json (strings with their expected ids).
Leaves out: the real 151k vocabulary (cannot be downloaded here).
"""
import json
import os
import random

# GLM-4's pre-tokenizer pattern (cl100k-like, digits in groups of 1..3).
GLM4_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# GLM-4.6V's added tokens in GLM's order (real ids 151329..151364); here they follow the BPE vocab.
GLM_SPECIAL_TOKENS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_transcription|>", "<|end_of_transcription|>",
    "<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>",
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
    "/nothink", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>",
]

BPE_VOCAB_SIZE = 1464   # incl. the 256 byte symbols; the 36 added tokens come on top (1500 in all)

# GLM-4.6V chat template written from the rules in glm4v.md section 7.2 (proxy for Flash's file).
# Explicit whitespace control everywhere, so it renders the same with or without trim/lstrip_blocks.
CHAT_TEMPLATE = r"""{%- macro item_text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable and content is not mapping -%}
{%- for item in content -%}
{%- if item is string -%}{{ item }}
{%- elif item.type == 'text' -%}{{ item.text }}
{%- elif item.type == 'image' or item.type == 'image_url' or 'image' in item or 'image_url' in item -%}<|begin_of_image|><|image|><|end_of_image|>
{%- elif item.type == 'video' or 'video' in item -%}<|begin_of_video|><|video|><|end_of_video|>
{%- endif -%}
{%- endfor -%}
{%- elif content is none -%}
{%- else -%}{{ content }}
{%- endif -%}
{%- endmacro -%}
{%- macro plain_text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable and content is not mapping -%}
{%- for item in content -%}
{%- if item is string -%}{{ item }}{%- elif item.type == 'text' -%}{{ item.text }}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- set no_think = enable_thinking is defined and not enable_thinking -%}
{%- set ns = namespace(last_user=-1, in_obs=false) -%}
{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{{- '[gMASK]<sop>' -}}
{%- if tools -%}
{{- '<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' -}}
{%- for tool in tools -%}{{ tool | tojson(ensure_ascii=False) }}{{ '\n' }}{%- endfor -%}
{{- '</tools>\n\nFor each function call, output the function name and arguments within the following XML format:\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}</arg_value>...</tool_call>' -}}
{%- endif -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}
{{- '<|system|>\n' + plain_text(m.content) -}}
{%- elif m.role == 'user' -%}
{%- set text = item_text(m.content) -%}
{{- '<|user|>\n' + text -}}
{%- if no_think and not text.endswith('/nothink') -%}{{- '/nothink' -}}{%- endif -%}
{%- elif m.role == 'assistant' -%}
{%- set content = plain_text(m.content) -%}
{%- set reasoning = '' -%}
{%- if m.reasoning_content is string -%}
{%- set reasoning = m.reasoning_content -%}
{%- elif '</think>' in content -%}
{%- set reasoning = content.split('</think>')[0].split('<think>')[-1] -%}
{%- set content = content.split('</think>')[-1] -%}
{%- endif -%}
{{- '<|assistant|>' -}}
{%- if loop.index0 > ns.last_user and reasoning.strip() -%}
{{- '\n<think>' + reasoning.strip() + '</think>' -}}
{%- else -%}
{{- '\n<think></think>' -}}
{%- endif -%}
{{- '\n' + content.strip() -}}
{%- if m.tool_calls -%}
{%- for tc in m.tool_calls -%}
{%- set f = tc.function if tc.function is defined else tc -%}
{{- '\n<tool_call>' + f.name -}}
{%- set args = f.arguments if f.arguments is mapping else {} -%}
{%- for k, v in args.items() -%}
{{- '<arg_key>' + k + '</arg_key><arg_value>' + (v if v is string else v | tojson(ensure_ascii=False)) + '</arg_value>' -}}
{%- endfor -%}
{{- '</tool_call>' -}}
{%- endfor -%}
{%- endif -%}
{%- elif m.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|observation|>' -}}{%- endif -%}
{{- '\n<tool_response>\n' + plain_text(m.content) + '\n</tool_response>' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|assistant|>\n' -}}{%- if no_think -%}{{- '<think></think>\n' -}}{%- endif -%}
{%- endif -%}"""

# Rows of glm4v.md section 7.2 that the template must reproduce exactly.
TEMPLATE_TABLE = [
    ({"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
      "add_generation_prompt": True},
     "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is this?<|assistant|>\n"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
      "add_generation_prompt": True, "enable_thinking": False},
     "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is this?/nothink<|assistant|>\n<think></think>\n"),
    ({"messages": [{"role": "system", "content": "You are helpful."},
                   {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
      "add_generation_prompt": True},
     "[gMASK]<sop><|system|>\nYou are helpful.<|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is this?<|assistant|>\n"),
    ({"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": True},
     "[gMASK]<sop><|user|>\nHi<|assistant|>\n"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
                   {"role": "assistant", "content": "<think>x</think>A cat."},
                   {"role": "user", "content": "More?"}],
      "add_generation_prompt": True},
     "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What is this?<|assistant|>\n<think></think>\nA cat.<|user|>\nMore?<|assistant|>\n"),
    # extra rows (our own, same rules): thinking off with a system message and a text-only user
    ({"messages": [{"role": "system", "content": "你是助手。"}, {"role": "user", "content": "你好"}],
      "add_generation_prompt": True, "enable_thinking": False},
     "[gMASK]<sop><|system|>\n你是助手。<|user|>\n你好/nothink<|assistant|>\n<think></think>\n"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image"},
                                                {"type": "text", "text": "B"}, {"type": "image"}]}],
      "add_generation_prompt": True, "enable_thinking": False},
     "[gMASK]<sop><|user|>\nA<|begin_of_image|><|image|><|end_of_image|>B<|begin_of_image|><|image|><|end_of_image|>/nothink<|assistant|>\n<think></think>\n"),
]


def _training_corpus():
    rng = random.Random(7)
    en = [
        "The quick brown fox jumps over the lazy dog while the editor writes a summary of the article.",
        "Alt text describes an image for people who cannot see it, so it should be short and specific.",
        "We're shipping a new release today; it'll include faster image processing and better caching.",
        "She said she'd review the draft, but they've not seen any comments since Monday's meeting.",
        "A photo of a red arrow pointing up on a colourful gradient background with a white diagonal line.",
        "Search engines show a meta description below the title; keep it under one hundred and sixty characters.",
        "The model reads the text and the images of a blog post and proposes a summary in the same language.",
        "Operators run one nginx in front of the daemon, with Redis for caching finished answers.",
        "Screenshots of user interfaces often contain buttons, input fields, menus and small labels.",
        "In 2025 the team measured 1234 requests per second at a p99 latency of 87 milliseconds.",
        "Please describe this picture. What is in the image? How many people are there? Is it indoors?",
        "It's a sunny day in the park: children are playing, dogs are running and a man is reading.",
    ]
    zh = [
        "今天我们发布了新版本的编辑器，支持自动生成图片的替代文本。",
        "这张图片显示了一只红色的箭头，背景是彩色的渐变，还有一条白色的斜线。",
        "请用中文总结这篇文章的主要内容，不超过一百个字。",
        "搜索引擎描述应该简短、准确，并且包含文章的关键词。",
        "模型会读取文章的文字和图片，然后用同样的语言写出摘要。",
        "运维人员在守护进程前面运行一个 nginx，并使用 Redis 缓存答案。",
        "截图中有按钮、输入框、菜单和一些小的标签文字。",
        "设置页面里有首页、文章、图片和评论四个选项。",
        "我们的服务器每秒可以处理一千多个请求，延迟很低。",
        "你好！请问这张图片里有什么？图片中有几个人？是在室内吗？",
        "第一季度的收入增长了百分之十二，用户数量达到了三百万。",
        "北京、上海、广州和深圳是中国最大的城市。",
    ]
    code = [
        "def resize(image, height, width):\n    return image.resize((width, height))\n",
        "for (size_t i = 0; i < n; ++i) {\n\tout[i] = in[i] * scale + bias;\n}\n",
        "int main(int argc, char **argv) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
        "const url = `https://example.com/api/v1/chat?id=${id}&lang=zh`;\n",
        "if x == 0:\n        raise ValueError('x must not be zero')\n    else:\n        y = x ** 2\n",
        "SELECT id, title FROM posts WHERE alt_text IS NULL ORDER BY id DESC LIMIT 100;\n",
        "{\"model\": \"glm-4.6v-flash\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
        "    std::vector<int32_t> ids;  // token ids\n    ids.reserve(1024);\n",
        "<div class=\"post\"><img src=\"a.png\" alt=\"\"/><p>Hello</p></div>\n",
        "x = [1, 2, 3]; y = {'a': 1, 'b': 2}; z = (x, y)  # tuple\n",
    ]
    lines = []
    for _ in range(40):
        lines.append(rng.choice(en))
        lines.append(rng.choice(zh))
        lines.append(rng.choice(code))
        lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(5)))
    # a Chinese vocabulary list so common characters become single tokens
    common = "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后什么"
    lines.extend(common[i:i + 8] for i in range(0, len(common), 3))
    return en + zh + code + lines


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers, AddedToken
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM4_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    n_bpe = tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GLM_SPECIAL_TOKENS])
    assert tok.token_to_id(GLM_SPECIAL_TOKENS[0]) == n_bpe
    assert tok.token_to_id(GLM_SPECIAL_TOKENS[-1]) == n_bpe + len(GLM_SPECIAL_TOKENS) - 1
    return tok


def corpus_strings():
    s = [
        "Hello, world!", "hello world", " Hello", "  leading spaces", "trailing spaces   ",
        "The quick brown fox jumps over the lazy dog.",
        "It'S what he'll say; they'RE sure we've IT'LL don't I'm you'd",
        "'s 's'S ''ll", "can't won't shouldn't", "rock'n'roll", "O'Brien's book",
        "今天我们发布了新版本的编辑器。", "你好，世界！", "图片中有几个人？", "北京、上海、广州和深圳",
        "中文English混合mixed文本text", "GLM-4.6V 模型 2025年 第3季度",
        "emoji: 😀🎉👍🏽 and 👨‍👩‍👧‍👦 family", "🇨🇳🇺🇸 flags", "✓ ✗ → ← ★",
        "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "if (a && b || !c) { x->y = *p; }", "print(\"a\\tb\\n\")", "let s = `${a}-${b}`;",
        "<div class=\"x\">text</div>", "https://example.com/path?q=1&r=2#frag", "user@example.org",
        "a  b   c    d", "tab\there", "\t\t\tindented", "line1\nline2", "line1\r\nline2", "\n\n\n",
        "   \n   \n", " \t \n \t ", "end with newline\n", "\n start with newline", "a\n\n\nb",
        "spaces before newline   \nnext", "x\r\ny\rz", "\u3000全角空格\u3000", "nbsp\u00a0here",
        "1", "12", "123", "1234", "12345", "1234567890", "3.14159265358979", "-42", "+1e-10",
        "100000000000000000000", "2025-06-07", "12:34:56", "١٢٣٤٥ arabic digits", "१२३ devanagari digits",
        "①②③ circled", "Ⅻ roman", "$1,234.56", "50%", "0x1F4A9", "v1.2.3-rc.4",
        "café naïve résumé", "cafe\u0301 combining acute", "e\u0300\u0301\u0302 stacked marks",
        "Z\u0351\u0352\u0353algo", "한국어 텍스트", "日本語のテキストです。", "Русский текст", "Ελληνικά",
        "עברית", "العربية", "ไทย", "हिन्दी", "Tiếng Việt",
        "<|user|>", "<|assistant|>", "[gMASK]<sop>", "text <|image|> text", "<think>reason</think>answer",
        "a/nothink", "/nothink", "/nothinking", "<|endoftext|><|endoftext|>", "<|begin_of_image|><|image|><|end_of_image|>",
        "<|user|\n>", "< |user| >", "<|unknown|>", "<think", "</think >", "[MASK] [gMASK] [sMASK]",
        "<|begin_of_box|>[[1,2,3,4]]<|end_of_box|>", "<tool_call>f<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>",
        "\u200b zero width space", "\u200d joiner", "\ufeffBOM", "\ufffd replacement", "\U0001d54f math X",
        "\U00010348 gothic", "\u0000 nul", "\u007f del", "\u0085 nel", "\u2028 line sep", "\u2029 para sep",
        "unseen: ꙮ ᚠᛇᚻ ⠁⠃⠉ 𓀀 𝄞", "private use \ue000\uf8ff", "\U000F0000 plane 15",
        "Ǆ ǅ ǆ titlecase", "ﬁ ligature", "Å Å angstrom", "ℌ ℍ ℎ", "½ ¼ ¾",
        "", " ", "  ", "\t", "\n", "a", "Z", "中", "😀", ".", "...", "!!!???", "---", "___", "***",
        "a.b.c", "a,b;c:d", "(a)[b]{c}", "\"quoted\"", "'single'", "`backtick`",
        "MiXeD CaSe WoRdS", "ALLCAPS SENTENCE HERE", "snake_case_name", "camelCaseName", "kebab-case-name",
        "x=1;y=2", "a+b-c*d/e", "i++ --j", "a==b!=c<=d>=e", "// comment", "/* block */", "# heading",
        "- list item\n- another", "1. first\n2. second", "| a | b |\n|---|---|", "**bold** _it_",
        "Il était une fois", "Straße größer", "İstanbul ıi", "ß ẞ",
    ]
    rng = random.Random(11)
    words = ["model", "image", "alt", "text", "summary", "编辑", "图片", "文章", "12", "3456", " ", "\n", "😀", "'s",
             "<|image|>", "don't", "中文", "ok", ",", ".", "\t", "  ", "x", "é", "ü"]
    while len(s) < 300:
        n = rng.randint(1, 12)
        s.append("".join(rng.choice(words) + (" " if rng.random() < 0.5 else "") for _ in range(n)))
    return s


def make_tokenizer_fixtures(fix_dir):
    from transformers import PreTrainedTokenizerFast
    out_dir = os.path.join(fix_dir, "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    tok = build_tokenizer()
    n_bpe = tok.get_vocab_size() - len(GLM_SPECIAL_TOKENS)

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=128000,
        extra_special_tokens=list(GLM_SPECIAL_TOKENS))
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(CHAT_TEMPLATE)

    # template self-check against the table in glm4v.md 7.2
    rows = []
    for kwargs, expect in TEMPLATE_TABLE:
        got = hf.apply_chat_template(kwargs["messages"], tokenize=False,
                                     **{k: v for k, v in kwargs.items() if k != "messages"})
        assert got == expect, f"template mismatch:\n got {got!r}\nwant {expect!r}"
        rows.append({"kwargs": kwargs, "rendered": got})

    # corpus with expected ids (tokenizers library, special tokens parsed) and the ids when
    # special-token text is treated as plain text (user input).
    entries = []
    for s in corpus_strings():
        ids = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        plain = tok.encode(s, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        hf_ids = hf.encode(s, add_special_tokens=False)
        assert hf_ids == ids, (s, hf_ids, ids)
        e = {"text": s, "ids": ids}
        if plain != ids:
            e["ids_plain"] = plain
        e["decoded"] = tok.decode(ids, skip_special_tokens=False)
        entries.append(e)
    specials = {t: tok.token_to_id(t) for t in GLM_SPECIAL_TOKENS}
    info = {
        "vocab_size": tok.get_vocab_size(), "bpe_vocab_size": n_bpe, "n_merges": None,
        "special_tokens": specials, "split_regex": GLM4_SPLIT_REGEX,
        "note": "ids = tokenizers.Tokenizer.encode(text, add_special_tokens=False).ids (added tokens matched as whole "
                "strings first); ids_plain (only when different) = same with encode_special_tokens=True, i.e. "
                "special-token text encoded as ordinary bytes; decoded = decode(ids, skip_special_tokens=False)",
    }
    tj = json.load(open(os.path.join(out_dir, "tokenizer.json"), encoding="utf-8"))
    info["n_merges"] = len(tj["model"]["merges"])
    with open(os.path.join(out_dir, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump({"info": info, "template_cases": rows, "entries": entries}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"tokenizer: vocab {tok.get_vocab_size()} (bpe {n_bpe}), {len(entries)} corpus strings, "
          f"specials {specials['<|endoftext|>']}..{specials['<|video|>']}")
    return specials
