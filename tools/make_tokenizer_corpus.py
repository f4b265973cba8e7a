#!/usr/bin/env python3
"""Writes the tokenizer test data in tests/data/tokenizer/ (seeded, deterministic for fixed package versions).

  corpus.jsonl            one JSON string per line: >= 2,000 test strings (prose in many scripts, emoji, code,
                          numbers, whitespace, special tokens, combining marks, odd but valid Unicode, long words)
  expected.jsonl          one JSON array per line: the ids HF `tokenizers` gives each corpus line with the
                          DeepSeek-V3 tokenizer (../shared/data/deepseek-v3-tokenizer/tokenizer.json), no BOS
  tiny/tokenizer.json     a small byte-level BPE (~2k tokens) trained here with HF `tokenizers`, with DeepSeek-V3's
                          pre-tokenizer regexes and special / added tokens
  tiny/tokenizer_config.json  its BOS / EOS / add_bos_token
  tiny/tokenizer.gguf     the same tokenizer as GGUF metadata (tokenizer.ggml.*, written by gguf-py's GGUFWriter;
                          no tensors)
  tiny/expected.jsonl     the ids HF gives each corpus line with the tiny tokenizer
  nospecial.jsonl         for the lines whose ids change when special tokens are not parsed
                          (HF `encode_special_tokens = True`): {"line": N, "v3": [...], "tiny": [...]}
                          ("v3" only when the DeepSeek-V3 tokenizer is available)
  features/tokenizer.json, features/cases.jsonl   a variant of the tiny tokenizer using the other
                          tokenizer.json features (Split behaviours, Digits, ByteLevel regex and prefix space,
                          lstrip / rstrip / single_word added tokens, "a b" merges, ignore_merges) and HF's ids for test strings
  cli_input.jsonl / cli_expected.jsonl   a few lines with \\u escapes (surrogate pairs included) for the
                          hmoe-tokenize test, and their tiny-tokenizer ids

Usage: python tools/make_tokenizer_corpus.py [--v3 PATH/tokenizer.json] [--out tests/data/tokenizer]
Needs: tokenizers, gguf (tools/requirements.txt). Made with tokenizers 0.23.3 and gguf 0.19.0.
"""

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path

SEED = 20240603
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------------------------
# DeepSeek-V3's pre-tokenizer (tokenizer.json) and special tokens, used for the tiny trained tokenizer.
V3_SPLITS = [
    r"\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
# (content, special, normalized): as in DeepSeek-V3 / R1, plus <think> tokens (R1).
ADDED = [
    ("<｜User｜>", False, True),
    ("<｜Assistant｜>", False, True),
    ("<think>", False, True),
    ("</think>", False, True),
    ("<｜tool▁calls▁begin｜>", False, True),
    ("<｜tool▁calls▁end｜>", False, True),
    ("<｜tool▁call▁begin｜>", False, True),
    ("<｜tool▁call▁end｜>", False, True),
    ("<｜tool▁sep｜>", False, True),
    ("<｜fim▁hole｜>", False, True),
    ("<|EOT|>", True, True),  # a special token matched in the normalized pass, as in V3
]
SPECIAL_TEXTS = [BOS, EOS, PAD] + [a[0] for a in ADDED] + [
    "<｜place▁holder▁no▁7｜>", "<｜end▁of▁sentence", "<｜User", "<|User|>", "<think", "</think", "<｜", "｜>",
    "< think>", "<THINK>", "<｜Assistant｜", "<<｜User｜>>",
]

# ---------------------------------------------------------------------------------------------------------------
# Building blocks.
EN_WORDS = """the of and to in is was he for it with as his on be at by had are but from or have an they which one
you were all her she there would their we him been has when who will no more if out so up said what its about
than into them can only other time new some could these two may first then do any like my now over such our man
me even most made after also did many before must through back years where much your way well down should
because each just those people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year off come since
against go came right used take three tokenizer model expert router attention layer cache token sequence merge
byte pair encoding unicode script whitespace number digit letter punctuation symbol mark emoji parser compiler
function variable memory thread kernel matrix vector tensor gradient inference latency throughput benchmark
""".split()
CONTRACTIONS = ["don't", "it's", "I'm", "you're", "we've", "they'll", "she'd", "can't", "won't", "O'Brien",
                "rock'n'roll", "'quoted'", "DON'T", "It'S"]
ZH = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"
ZH_PUNCT = "，。！？、；：「」『』（）《》——……"
HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)]
KATAKANA = [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー"]
JA_WORDS = ["東京", "日本語", "勉強", "時間", "電車", "学校", "先生", "友達", "天気", "会社", "仕事", "映画"]
JA_PHRASES = ["こんにちは", "ありがとうございます", "すみません", "おはよう", "コンピューター", "トークナイザー",
              "テスト", "ラーメン", "です", "ます", "でした", "ません", "ですか", "かもしれない", "ゲーム", "ｶﾀｶﾅ"]
KO_WORDS = ["안녕하세요", "감사합니다", "한국어", "토크나이저", "컴퓨터", "학교", "사랑", "시간", "오늘", "날씨가",
            "좋네요", "프로그램", "모델", "데이터", "서울", "먹었어요"]
OTHER_SCRIPTS = ["Привет мир", "Ελληνικά γράμματα", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
                 "Γειά σου Κόσμε", "Здравствуйте", "Ողջույն", "გამარჯობა", "ሰላም", "ᐊᐃᓐᓇᐅᔪᖅ", "ꦲꦏ꧀ꦱꦫ",
                 "Việt Nam đẹp lắm", "Zażółć gęślą jaźń", "Füße Straße Äpfel", "ﬁnancial ﬂow", "ŉ ǅ ǈ",
                 "𝐇𝐞𝐥𝐥𝐨 𝕎𝕠𝕣𝕝𝕕", "ℌℑℜ", "Ⅻ ⅷ ↂ", "தமிழ்", "ਪੰਜਾਬੀ", "ᏣᎳᎩ", "ⰀⰁⰂ", "𐐀𐐨𐑉", "𞤀𞤢𞤣"]
EMOJI = ["😀", "😂", "🥲", "🤖", "🦙", "🐋", "🚀", "❤️", "✨", "🔥", "👍", "👍🏻", "👍🏽", "👍🏿", "👋🏼",
         "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏾‍🚀", "🏳️‍🌈", "🏴‍☠️", "❤️‍🔥", "🇯🇵", "🇺🇸", "🇩🇪", "#️⃣", "1️⃣", "©️", "™",
         "☺", "☺️", "🫠", "🫶🏽", "🧔‍♀️", "👁️‍🗨️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🤌", "🫡", "⌚", "♻️",
         # Unicode 15 / 16 (newer than PCRE2 10.42's tables: see include/hmoe/tokenizer/unicode_delta.hpp)
         "🪿", "🩷", "🫎", "🫨", "🫩", "🫆", "🐦‍🔥", "🍋‍🟩"]
COMBINING = ["e\u0301", "a\u0300\u0316", "n\u0303", "o\u0308\u0304", "Z\u0351\u0352\u0357\u035b\u0324\u0329",
             "\u0301start", "क्षि", "ก่า", "\u1100\u1161\u11a8", "اَلْعَرَبِيَّة", "Å", "A\u030a", "ḍ̣", "q\u0307\u0323",
             "\u20dd", "1\u20e3", "e\u0301\u0301\u0301\u0301"]
ODD = ["\x00", "\x01\x02\x03", "\x1b[31mred\x1b[0m", "\x7f", "\x85", "\x80\x9f", "\u00ad", "\u200b", "\u200c",
       "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff", "\ufffd", "\ufdd0", "\ufffe", "\uffff", "\ue000",
       "\uf8ff", "\U000f0000", "\U0010fffd", "\U0010ffff", "\U0001d400", "\U00020000", "\U0002a6d6", "\U000e0001",
       "\U000e0041", "\ufe0f", "\ufe0e", "\u0378", "\u2028", "\u2029", "\u180e", "\u3000", "\u00a0", "\u1680",
       "\u2007", "\u202f", "\u205f", "\u000b", "\u000c", "\x1c\x1d\x1e\x1f", "\u061c", "\u034f", "\U0001f3fb",
       "\u0e01\u0e33", "\uff01\uff1f", "\u2018quotes\u2019 \u201cdouble\u201d", "\u00b5\u00b2\u00b3\u00bd\u00bc",
       # assigned in Unicode 15 / 16: CJK ext. H and I, Kawi letters, digits and marks, Garay, new symbols
       "\U00031350\U00031351", "\U0002ebf0x", "\U00011f04\U00011f05\U00011f34", "\U00011f50\U00011f51",
       "\U00010d4a\U00010d4b", "\U0001cc00\U0001cc01", "\u0897a", "\U0001e4d0\U0001e4f0"]
SEPARATORS = [",", ".", " ", "_", "'", "\u202f", "\u00a0", "-", ":", "/"]
DIGIT_SETS = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "〇一二三四五六七八九"]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\n\r\n", " \n", "\n ", " \t ", "\u00a0",
              "\u3000", "\u2028", "\f", "\v", "    ", "        "]
PY_TEMPLATES = [
    "def {f}({a}, {b}=None):\n    \"\"\"{doc}\"\"\"\n    if {b} is None:\n        {b} = []\n    return [{a} * 2 for _ in range({n})]\n",
    "class {C}({C2}):\n    def __init__(self, {a}: int) -> None:\n        super().__init__()\n        self.{a} = {a}  # {doc}\n",
    "import numpy as np\n\n{a} = np.zeros(({n}, {m}), dtype=np.float32)\n{b} = {a}.sum(axis=-1) / {n}.0\nprint(f\"{{{b}!r:>10}}\")\n",
    "for i, {a} in enumerate({b}):\n\tif i % {n} == 0:\n\t\tcontinue\n\t{f}({a}, key=lambda x: -x)\n",
    "@dataclass(frozen=True)\nclass {C}:\n    {a}: list[str] = field(default_factory=list)\n    {b}: dict[str, int] | None = None\n",
    "try:\n    {a} = await {f}(**kwargs)\nexcept (KeyError, ValueError) as e:\n    raise RuntimeError(f'{doc}: {{e}}') from e\n",
]
CPP_TEMPLATES = [
    "template <class T, std::size_t N>\nconstexpr auto {f}(const std::array<T, N>& {a}) noexcept -> T {{\n  return std::accumulate({a}.begin(), {a}.end(), T{{}});\n}}\n",
    "#include <vector>\n#include \"hmoe/{a}.hpp\"\n\nint main(int argc, char** argv) {{\n    std::vector<int> {b}({n}, -1);\n    return {b}[0] >= 0 ? 0 : 1;\n}}\n",
    "struct {C} : public {C2}<{C}> {{\n  ~{C}() override = default;\n  [[nodiscard]] bool {f}() const {{ return {a}_ != nullptr && {b}_ >= {n}u; }}\n}};\n",
    "for (auto& [{a}, {b}] : map) {{\n\tif ({a}.empty()) continue;  // {doc}\n\t{b} += 0x{h}ULL >> {n};\n}}\n",
    "std::unique_ptr<{C}> p = std::make_unique<{C}>(/*{a}=*/{n}, \"{doc}\");\np->{f}();\nstatic_assert(sizeof({C}) == {m});\n",
]
JSON_TEMPLATES = [
    '{{"{a}": {n}, "{b}": [{n}, {m}, -{n}.5e-3], "ok": true, "name": "{doc}"}}',
    '[\n  {{\n    "id": {n},\n    "{a}": null,\n    "tags": ["{b}", "{C}"]\n  }}\n]',
    '{{"role": "user", "content": "{doc}\\n\\u00e9\\ud83d\\ude00", "{a}": {{"{b}": {{}}}}}}',
]


def ident(rng):
    w = rng.choice(EN_WORDS)
    style = rng.randrange(4)
    if style == 0:
        return w
    if style == 1:
        return w + "_" + rng.choice(EN_WORDS)
    if style == 2:
        return w + rng.choice(EN_WORDS).capitalize()
    return w + str(rng.randrange(100))


def type_name(rng):
    return "".join(rng.choice(EN_WORDS).capitalize() for _ in range(rng.randint(1, 3)))


def sentence(rng, n_words=None):
    n = n_words or rng.randint(4, 18)
    words = []
    for i in range(n):
        w = rng.choice(CONTRACTIONS) if rng.random() < 0.06 else rng.choice(EN_WORDS)
        if i == 0 or rng.random() < 0.05:
            w = w.capitalize()
        if rng.random() < 0.03:
            w = w.upper()
        words.append(w)
        if rng.random() < 0.08 and i < n - 1:
            words[-1] += rng.choice([",", ";", ":", " -", " —", "..."])
    s = " ".join(words) + rng.choice([".", ".", ".", "!", "?", "...", "?!", ""])
    if rng.random() < 0.1:
        s = '"' + s + '"'
    if rng.random() < 0.1:
        s = "(" + s + ")"
    return s


def prose(rng):
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))


def chinese(rng):
    out = []
    for _ in range(rng.randint(1, 5)):
        out.append("".join(rng.choice(ZH) for _ in range(rng.randint(2, 14))))
        out.append(rng.choice(ZH_PUNCT))
        if rng.random() < 0.2:
            out.append(rng.choice([" ", "AI", " GPU ", "2024年", "3.5", "DeepSeek", "V3", "（注）"]))
    return "".join(out)


def japanese(rng):
    out = []
    for _ in range(rng.randint(2, 8)):
        r = rng.random()
        if r < 0.3:
            out.append(rng.choice(JA_WORDS))
        elif r < 0.6:
            out.append(rng.choice(JA_PHRASES))
        elif r < 0.8:
            out.append("".join(rng.choice(HIRAGANA) for _ in range(rng.randint(1, 5))))
        else:
            out.append("".join(rng.choice(KATAKANA) for _ in range(rng.randint(2, 6))))
        if rng.random() < 0.3:
            out.append(rng.choice(["、", "。", "！", "？", "　", " ", "「", "」", "・"]))
    return "".join(out)


def korean(rng):
    words = []
    for _ in range(rng.randint(2, 8)):
        if rng.random() < 0.6:
            words.append(rng.choice(KO_WORDS))
        else:
            words.append("".join(chr(rng.randrange(0xAC00, 0xD7A4)) for _ in range(rng.randint(1, 4))))
    return " ".join(words) + rng.choice([".", "?", "!", "", "요."])


def emoji(rng):
    out = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(EMOJI))
        elif r < 0.7:
            out.append(rng.choice(EN_WORDS))
        elif r < 0.85:
            out.append(" ")
        else:
            out.append(rng.choice(EMOJI) * rng.randint(2, 4))
    return "".join(out) if rng.random() < 0.5 else " ".join(out)


def code(rng):
    kind = rng.randrange(3)
    fmt = dict(f=ident(rng), a=ident(rng), b=ident(rng), C=type_name(rng), C2=type_name(rng),
               n=rng.randint(0, 4096), m=rng.randint(1, 64), h="%X" % rng.getrandbits(32), doc=sentence(rng, 5))
    tpl = rng.choice([PY_TEMPLATES, CPP_TEMPLATES, JSON_TEMPLATES][kind])
    s = tpl.format(**fmt)
    if rng.random() < 0.2:
        s = s.replace("    ", "\t")
    if rng.random() < 0.15:
        s = s.replace("\n", "\r\n")
    return s


def digits(rng, n, digit_set="0123456789"):
    s = rng.choice(digit_set[1:]) if n > 1 else ""
    return s + "".join(rng.choice(digit_set) for _ in range(n - len(s)))


def grouped(num, sep, size=3):
    head = len(num) % size or size
    parts = [num[:head]] + [num[i:i + size] for i in range(head, len(num), size)]
    return sep.join(parts)


def numbers(rng):
    r = rng.random()
    if r < 0.3:
        n = rng.randint(1, 30)
        s = digits(rng, n)
        if rng.random() < 0.5:
            s = grouped(s, rng.choice(SEPARATORS), rng.choice([3, 3, 3, 4, 2]))
        return s
    if r < 0.45:
        return rng.choice(["-", "+", "$", "€", "£", "¥", "#", "~", "≈", ""]) + digits(rng, rng.randint(1, 12)) + \
            rng.choice(["", ".", ".5", "." + digits(rng, rng.randint(1, 8)), "%", "e-10", "E+5", "x", "kg", " km",
                        "th", "ms", "k", "M", "GB"])
    if r < 0.55:
        return digits(rng, rng.randint(1, 10), rng.choice(DIGIT_SETS[1:]))
    if r < 0.7:
        return rng.choice([
            "%04d-%02d-%02d" % (rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28)),
            "%02d:%02d:%02d.%03d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999)),
            "+1 (%03d) %03d-%04d" % (rng.randint(200, 999), rng.randint(0, 999), rng.randint(0, 9999)),
            "0x%X" % rng.getrandbits(rng.choice([8, 16, 32, 64])),
            "v%d.%d.%d" % (rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 200)),
            "%d.%d.%d.%d" % tuple(rng.randint(0, 255) for _ in range(4)),
            "3.14159265358979323846264338327950288",
            "1/%d + %d/%d = ?" % (rng.randint(2, 9), rng.randint(1, 9), rng.randint(2, 99)),
            "²³¹⁴ ½ ¼ ¾ ⅓ Ⅻ ⑴ ① ⒈ 𝟙",
        ])
    return "In %d, %s %s %s items cost $%s (%d%%)." % (
        rng.randint(1000, 2100), rng.choice(EN_WORDS), digits(rng, rng.randint(1, 7)), rng.choice(EN_WORDS),
        grouped(digits(rng, rng.randint(1, 10)), ","), rng.randint(0, 100))


def whitespace(rng):
    out = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(WHITESPACE) * rng.randint(1, 4))
        elif r < 0.85:
            out.append(rng.choice(EN_WORDS + ["x", "1", "中文", ".", "!", "é", "(", "-"]))
        else:
            out.append(" " * rng.randint(5, 40))
    return "".join(out)


def mixed(rng):
    parts = [rng.choice(OTHER_SCRIPTS), sentence(rng, 4), chinese(rng)[:8], japanese(rng)[:8], korean(rng)[:8],
             rng.choice(EMOJI), numbers(rng), rng.choice(COMBINING), rng.choice(ODD)]
    rng.shuffle(parts)
    k = rng.randint(2, len(parts))
    sep = rng.choice(["", " ", "  ", "\n", ", ", "\t"])
    return sep.join(parts[:k])


def specials(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice(SPECIAL_TEXTS))
        elif r < 0.7:
            out.append(sentence(rng, rng.randint(1, 5)))
        elif r < 0.8:
            out.append(rng.choice(WHITESPACE))
        elif r < 0.9:
            out.append(rng.choice(["<", ">", "｜", "▁", "<|", "|>", "</", "<<", ">>"]))
        else:
            out.append(chinese(rng)[:6])
    if rng.random() < 0.3:
        # A whole chat turn.
        return BOS + "You are helpful." + "<｜User｜>" + sentence(rng) + "<｜Assistant｜>" + "<think>\n" + \
            sentence(rng) + "\n</think>\n\n" + sentence(rng) + EOS
    return "".join(out) if rng.random() < 0.6 else " ".join(out)


def combining(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.6:
            out.append(rng.choice(COMBINING))
        else:
            w = rng.choice(EN_WORDS + OTHER_SCRIPTS)
            out.append(unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC", "NFKD"]), w))
        if rng.random() < 0.5:
            out.append(" ")
    s = "".join(out)
    return unicodedata.normalize("NFD", s) if rng.random() < 0.3 else s


def odd(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        out.append(rng.choice(ODD) if r < 0.6 else rng.choice(EN_WORDS) if r < 0.8 else rng.choice(WHITESPACE))
    return "".join(out)


def long_words(rng):
    r = rng.random()
    n = rng.choice([50, 100, 300, 1000, 3000])
    if r < 0.15:
        return rng.choice("abcxyz") * n
    if r < 0.3:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))
    if r < 0.4:
        return digits(rng, min(n, 500))
    if r < 0.5:
        return rng.choice(["!", "=", "-", "*", "#", ".", "~", "?!"]) * min(n, 400)
    if r < 0.6:
        return rng.choice([" ", "\t", "\n", "\r\n", " \n"]) * min(n, 300) + rng.choice(["", "x", " x"])
    if r < 0.7:
        return "".join(rng.choice(ZH) for _ in range(min(n, 400)))
    if r < 0.8:
        return "https://example.com/" + "/".join(ident(rng) for _ in range(rng.randint(3, 20))) + "?q=" + \
            digits(rng, 12) + "&lang=zh-CN#" + rng.choice(EN_WORDS)
    if r < 0.9:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return "".join(rng.choice(alphabet) for _ in range(min(n, 800))) + "=="
    return "Pneumonoultramicroscopicsilicovolcanoconiosis " * rng.randint(1, 5) + \
        "".join(rng.choice(["é", "ñ", "ü", "ø", "ß"]) for _ in range(min(n, 200)))


CATEGORIES = [
    ("prose", prose, 260), ("chinese", chinese, 160), ("japanese", japanese, 140), ("korean", korean, 120),
    ("emoji", emoji, 140), ("code", code, 200), ("numbers", numbers, 200), ("whitespace", whitespace, 160),
    ("mixed", mixed, 170), ("specials", specials, 200), ("combining", combining, 120), ("odd", odd, 140),
    ("long", long_words, 40),
]


def fixed_strings():
    """Cases written out by hand: every number length 1..30, edge cases."""
    out = ["", " ", "a", "\n", "\r\n", "\t", "  ", "Hello world", " Hello world", "Hello World!", "Hello, world!",
           "I'm here", "you'll", "it's 3:45pm", "e.g. i.e. etc.", "@user #tag $var %p ^x &y *z", "a.b,c;d:e",
           "foo()", "x += 1", "!!!", "... ...", "\"'`", "😀", "👨‍👩‍👧‍👦", "中", "日本", "한", BOS, EOS, BOS + EOS,
           BOS + BOS, "<think></think>", "<think>\n\n</think>\n\n", "a<｜User｜>b", " <｜User｜> ", "<｜User｜><｜Assistant｜>",
           "<<｜User｜>", "<｜User｜>>", "<|EOT|>", "x<|EOT|>y", "<|EOT|><｜User｜>", "\u00a0\u00a0", "\u3000x",
           "x\u180ey", " \u180e", "\u2028\u2029", "\x85", "\x1c", "line1\nline2\r\nline3\rline4", "   \n\n   ",
           "tabs\tand\tspaces  mixed \t\n", "trailing   ", "   leading", "\ufeffBOM", "ﬁ", "ǅ", "ß", "İstanbul",
           "Ⅻ", "①", "½", "²", "٣", "１２３", "〇", "零一二三"]
    for n in range(1, 31):
        out.append(("9876543210" * 3)[:n])
        out.append("x" + ("1234567890" * 3)[:n] + "y")
        out.append(" " + ("5" * n))
    return out


def make_corpus(rng, scale=1):
    strings = fixed_strings() if scale == 1 else []
    for _, fn, count in CATEGORIES:
        strings.extend(fn(rng) for _ in range(count * scale))
    return strings


def train_tiny(rng, out_dir):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), behavior="isolated", invert=False) for p in V3_SPLITS] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, min_frequency=2, show_progress=False,
                                  special_tokens=[AddedToken(t, special=True, normalized=False) for t in (BOS, EOS, PAD)],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    training = make_corpus(rng, scale=3)
    tok.train_from_iterator(training, trainer=trainer)
    tok.add_tokens([AddedToken(c, special=s, normalized=n) for c, s, n in ADDED if not s])
    tok.add_special_tokens([AddedToken(c, special=s, normalized=n) for c, s, n in ADDED if s])
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"), pretty=False)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"add_bos_token": True, "add_eos_token": False, "bos_token": BOS, "eos_token": EOS,
         "tokenizer_class": "LlamaTokenizerFast"}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return Tokenizer.from_file(str(out_dir / "tokenizer.json"))


def write_gguf(tok_json_path, gguf_path):
    """tokenizer.json -> GGUF tokenizer.ggml.* keys, as llama.cpp's converter lays them out."""
    import gguf

    j = json.loads(Path(tok_json_path).read_text(encoding="utf-8"))
    vocab = j["model"]["vocab"]
    n = max(list(vocab.values()) + [a["id"] for a in j["added_tokens"]]) + 1
    tokens = [None] * n
    types = [gguf.TokenType.NORMAL] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in j["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    assert all(t is not None for t in tokens)
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    w = gguf.GGUFWriter(str(gguf_path), arch="deepseek2")
    w.add_name("hmoe tokenizer test fixture")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-v3")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab[BOS])
    w.add_eos_token_id(vocab[EOS])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_features(tiny_json, out_dir, corpus):
    """A variant of the tiny tokenizer that uses the tokenizer.json features DeepSeek does not: the other Split
    behaviours, a literal Split, Digits, ByteLevel with add_prefix_space and its GPT-2 regex, added tokens with
    lstrip / rstrip / single_word, merges written as "a b" strings, ignore_merges. Returns HF's ids for test
    strings."""
    import unicodedata

    from tokenizers import AddedToken, Regex, Tokenizer, pre_tokenizers as P

    # Tokens that no merge makes (only ignore_merges finds them) go into the vocabulary first, after the
    # trained ones; the added tokens move up to make room.
    j = json.loads(Path(tiny_json).read_text(encoding="utf-8"))
    extra = ["Ġzzzz", "quux", "Ġ123"]
    first = max(j["model"]["vocab"].values()) + 1
    for a in j["added_tokens"]:
        if a["id"] >= first:
            a["id"] += len(extra)
    for k, word in enumerate(extra):
        j["model"]["vocab"][word] = first + k
    tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
    tok.pre_tokenizer = P.Sequence([
        P.Split(Regex(r"\s*[\r\n]+"), behavior="isolated"),
        P.Split(Regex(r"\p{P}+"), behavior="merged_with_next"),
        P.Split(Regex(r"[\p{Lu}]"), behavior="merged_with_previous"),
        P.Split(Regex(r"\p{Han}"), behavior="contiguous"),
        P.Split("--", behavior="removed"),
        P.Split(Regex(r"[aeiou]+"), behavior="isolated", invert=True),
        P.Digits(individual_digits=False),
        P.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.add_tokens([AddedToken("<ls>", lstrip=True), AddedToken("<rs>", rstrip=True),
                    AddedToken("hello", single_word=True), AddedToken("wörd", single_word=True, normalized=False)])
    tok.add_special_tokens([AddedToken("<both>", lstrip=True, rstrip=True, special=True)])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.json"
    tok.save(str(path), pretty=False)
    j = json.loads(path.read_text(encoding="utf-8"))
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    j["model"]["ignore_merges"] = True  # a word that is a token is that token, whatever the merges say
    path.write_text(json.dumps(j, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tok = Tokenizer.from_file(str(path))
    for a in j["added_tokens"]:
        assert tok.token_to_id(a["content"]) == a["id"], a
    assert tok.token_to_id("quux") == first + 1
    cases = ["hello world", "say hello, hello!", "ahello hellob hello_x", "1hello", "héllo hello", "wörd wörds xwörd",
             "a  <ls>b", "a\t\n <ls>", "<ls>", "x<rs>   y", "x <rs>\n\ny", "<rs>", " <both>  z", "q<both>",
             "--a--b----c-", "ABCdefGHI", "x--y", "12345 6789", "١٢٣ and 45", "中文字符abc中", "Hello, World!! ok",
             "It's fine... isn't it?", "  leading", "trailing  ", "\r\n\r\nx", "A.B.C", "<both><ls><rs>hello",
             " zzzz zzzzz", "quux quuxy", " 123 1234"]
    # Characters newer than Unicode 14 are left out here: regex.hpp brings PCRE2 10.42 up to date for the general
    # categories DeepSeek's regexes use (\p{L} ...), not for scripts and subcategories (\p{Han}, \p{Lu}).
    cases += [c for c in corpus[::4] if not any(unicodedata.category(ch) == "Cn" for ch in c)]
    rows = []
    for c in cases:
        rows.append({"text": c, "ids": tok.encode(c, add_special_tokens=False).ids})
    dump_lines(out_dir / "cases.jsonl", rows)
    return len(rows)


UNICODE_DELTA_HEADER = "include/hmoe/tokenizer/unicode_delta.hpp"


def write_unicode_delta(path):
    """The code points that each general category L, M, N, P, S has in HF tokenizers' regex engine (Oniguruma,
    probed through a Split pre-tokenizer) but not in Python's unicodedata, whose Unicode version (14.0 for
    Python 3.11) is the one PCRE2 10.42 uses. regex.hpp adds them to \\p{L} etc. so that both engines agree."""
    import unicodedata

    import tokenizers
    from tokenizers import Regex, pre_tokenizers as P

    def onig_members(prop):
        split = P.Split(Regex(r"\p{%s}" % prop), behavior="removed")
        out = set()
        for start in range(0, 0x110000, 0x8000):
            cps = [c for c in range(start, start + 0x8000) if not 0xD800 <= c <= 0xDFFF]
            covered = bytearray(len(cps))
            for _, (a, b) in split.pre_tokenize_str("".join(map(chr, cps))):
                covered[a:b] = b"\x01" * (b - a)
            out.update(cps[i] for i in range(len(cps)) if not covered[i])
        return out

    def ranges(cps):
        r = []
        for c in sorted(cps):
            if r and r[-1][1] == c - 1:
                r[-1][1] = c
            else:
                r.append([c, c])
        # One C++ string literal piece per range ("\\x{41}-\\x{5A}" in the file is \x{41}-\x{5A} for PCRE2).
        return ["\\\\x{%X}" % a if a == b else "\\\\x{%X}-\\\\x{%X}" % (a, b) for a, b in r]

    lines = [
        "/// \\file",
        "/// \\brief Generated by tools/make_tokenizer_corpus.py --unicode-delta: do not edit.",
        "///",
        f"/// The code points that the general categories L, M, N, P and S hold in HF tokenizers {tokenizers.__version__}'s",
        f"/// Oniguruma but not in Unicode {unicodedata.unidata_version} (the Unicode data of PCRE2 10.42, Debian 12): characters",
        "/// assigned since. regex.hpp adds them to \\p{L}, \\p{M}, ... so that PCRE2 splits text as HF does. (With a",
        "/// newer PCRE2 the ranges are already in its classes and adding them changes nothing.)",
        "#pragma once",
        "",
        "#include <string_view>",
        "",
        "namespace hmoe::tokenizer::unicode_delta {",
        "",
    ]
    for prop in "LMNPS":
        onig = onig_members(prop)
        u = {c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c))[0] == prop}
        if u - onig:
            print(f"note: {len(u - onig)} code points are {prop} in Python's Unicode data but not in Oniguruma's",
                  file=sys.stderr)
        pieces = ranges(onig - u)
        lines.append(f"/// {len(onig - u)} code points.")
        lines.append(f"inline constexpr std::string_view {prop} =")
        line = ""
        for piece in pieces + [None]:
            if piece is None or len(line) + len(piece) > 100:
                lines.append('    "' + line + '"')
                line = ""
            if piece:
                line += piece
        lines[-1] += ";"
        lines.append("")
    lines.append("}  // namespace hmoe::tokenizer::unicode_delta")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def dump_lines(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")


def encode_all(tok, strings, special_tokens_as_text=False):
    tok.encode_special_tokens = special_tokens_as_text
    ids = [tok.encode(s, add_special_tokens=False).ids for s in strings]
    tok.encode_special_tokens = False
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v3", default=str(ROOT.parent / "shared/data/deepseek-v3-tokenizer/tokenizer.json"))
    ap.add_argument("--out", default=str(ROOT / "tests/data/tokenizer"))
    ap.add_argument("--unicode-delta", action="store_true",
                    help=f"(re)write {UNICODE_DELTA_HEADER} instead of the test data")
    args = ap.parse_args()
    if args.unicode_delta:
        write_unicode_delta(ROOT / UNICODE_DELTA_HEADER)
        return
    from tokenizers import Tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    corpus = make_corpus(rng)
    # Every line must be encodable text (no lone surrogates).
    for s in corpus:
        s.encode("utf-8")
    dump_lines(out / "corpus.jsonl", corpus)

    tiny = train_tiny(random.Random(SEED + 1), out / "tiny")
    write_gguf(out / "tiny/tokenizer.json", out / "tiny/tokenizer.gguf")
    tiny_ids = encode_all(tiny, corpus)
    tiny_plain = encode_all(tiny, corpus, special_tokens_as_text=True)
    dump_lines(out / "tiny/expected.jsonl", tiny_ids)
    n_features = make_features(out / "tiny/tokenizer.json", out / "features", corpus)

    v3 = None
    if Path(args.v3).exists():
        v3 = Tokenizer.from_file(args.v3)
        v3_ids = encode_all(v3, corpus)
        v3_plain = encode_all(v3, corpus, special_tokens_as_text=True)
        dump_lines(out / "expected.jsonl", v3_ids)
    else:
        print(f"note: {args.v3} not found; expected.jsonl (DeepSeek-V3 ids) not written", file=sys.stderr)

    rows = []
    for i in range(len(corpus)):
        row = {"line": i + 1}
        changed = tiny_plain[i] != tiny_ids[i]
        row["tiny"] = tiny_plain[i]
        if v3:
            changed = changed or v3_plain[i] != v3_ids[i]
            row["v3"] = v3_plain[i]
        if changed:
            rows.append(row)
    dump_lines(out / "nospecial.jsonl", rows)

    # hmoe-tokenize test input: JSON with \u escapes (ensure_ascii), surrogate pairs included.
    cli = ["Hello, world!", "naïve café", "emoji 😀 and 👨‍👩‍👧", "中文 日本語 한국어", "tab\tnewline\nquote\"backslash\\",
           BOS + "<｜User｜>hi<｜Assistant｜>", "\u0000\u001f\u007f", "𝐀𝐁 \U0010fffd", ""]
    with open(out / "cli_input.jsonl", "w", encoding="ascii", newline="\n") as f:
        for s in cli:
            f.write(json.dumps(s, ensure_ascii=True) + "\n")
    dump_lines(out / "cli_expected.jsonl", encode_all(tiny, cli))

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(corpus)} strings, tiny vocab {tiny.get_vocab_size()}, {len(rows)} lines differ without special "
          f"tokens, {n_features} feature cases, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
