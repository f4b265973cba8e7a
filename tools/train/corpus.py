"""Training corpus for the bundled model: English text from Debian packages that is free to redistribute.

Sources (see SOURCE.md for licences and sizes):
  kjv       King James Bible (bible-kjv-text, read through the `bible` program of bible-kjv)   public domain
  fortunes  fortune cookies (fortunes, fortunes-min), a subset of the files                   BSD
  pydoc     Python 3.11 documentation, HTML rendered to text (python3-doc)                    PSF licence v2
  wordnet   WordNet 3.0 glosses (wordnet-base)                                                WordNet 3.0 licence

Every document has a stable key; crc32(key) % 100 decides its split: 0-1 held out (2 %), 2 validation (1 %),
the rest training. Chat turns are built from training documents only.
"""
from __future__ import annotations

import dataclasses
import glob
import html
import os
import random
import re
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK, THINK_END = "<think>", "</think>"

FORTUNE_DIR = Path("/usr/share/games/fortunes")
# Files left out: ascii art (art, ascii-art), song lyrics and TV/novel quotations (songs-poems, startrek,
# pratchett), and files whose jokes lean on ethnicity, sex or drugs (ethnic, men-women, drugs, politics), plus
# disclaimer and translate-me (boilerplate / non-English).
FORTUNE_FILES = ["computers", "cookie", "debian", "definitions", "education", "food", "fortunes", "goedel",
                 "humorists", "kids", "law", "linux", "linuxcookie", "literature", "love", "magic", "medicine",
                 "miscellaneous", "news", "paradoxum", "people", "perl", "pets", "platitudes", "riddles", "science",
                 "sports", "tao", "wisdom", "work", "zippy"]
PYDOC_DIR = Path("/usr/share/doc/python3.11/html")
PYDOC_PARTS = ["tutorial", "library", "reference", "howto", "faq", "c-api", "extending", "using", "installing",
               "install", "distributing", "glossary.html"]
PYDOC_CHUNK = 2500  # sections (split at h1-h3) longer than this are cut at line ends into documents of about this size
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
WORDNET_GROUP = 20  # synsets per document (consecutive in the data file, so related senses stay together)
# Only synsets that hold a sense seen in WordNet's sense-tagged corpus (index.<pos> tagsense_cnt > 0): the
# common senses, about a quarter of all synsets, so that the dictionary does not outweigh the other sources.

PACKAGES = ["bible-kjv", "bible-kjv-text", "fortunes", "fortunes-min", "python3-doc", "python3.11-doc", "wordnet-base"]


@dataclasses.dataclass
class Doc:
    source: str
    key: str
    text: str


def split_of(key: str) -> str:
    b = zlib.crc32(key.encode()) % 100
    return "heldout" if b < 2 else "valid" if b == 2 else "train"


# ------------------------------------------------------------------------------------------------ KJV

def kjv() -> tuple[list[Doc], list[tuple[str, str, str]]]:
    """Chapters as documents ("Genesis 1" then one numbered verse a line) and (chapter key, ref, text) verses."""
    out = subprocess.run(["bible", "-l100000", "Genesis 1:1-Revelation 22:21"], capture_output=True, text=True,
                         check=True).stdout
    docs, verses = [], []
    chapter, lines = None, []

    def flush():
        if chapter is not None:
            docs.append(Doc("kjv", f"kjv/{chapter}", chapter + "\n" + "\n".join(lines)))

    for line in out.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            lines.append(f"{m.group(1)} {m.group(2).strip()}")
            verses.append((f"kjv/{chapter}", f"{chapter}:{m.group(1)}", m.group(2).strip()))
        else:
            flush()
            chapter, lines = line.strip(), []
    flush()
    assert len(docs) == 1189 and len(verses) == 31102, (len(docs), len(verses))
    return docs, verses


# ------------------------------------------------------------------------------------------------ fortunes

def fortunes() -> list[Doc]:
    docs = []
    for name in FORTUNE_FILES:
        raw = (FORTUNE_DIR / name).read_bytes().decode("utf-8", errors="replace")
        raw = re.sub(r".\x08", "", raw)  # overstriking (x BS x) used for bold/underline in a few files
        for i, f in enumerate(re.split(r"\n%\n", raw)):
            f = f.strip("\n").rstrip()
            if f.strip() and f.strip() != "%":
                docs.append(Doc("fortunes", f"fortunes/{name}/{i}", f))
    return docs


# ------------------------------------------------------------------------------------------------ Python docs

_BLOCK = {"p", "div", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "section", "table",
          "blockquote", "dl", "ul", "ol", "br", "hr", "caption", "figure"}
_PY_DL = {"function", "class", "method", "attribute", "data", "exception", "classmethod", "staticmethod",
          "decorator", "property", "module", "coroutinefunction", "coroutinemethod", "abstractmethod"}


class _PageText(HTMLParser):
    """Text of a Sphinx page's main body, split at h1-h3 into sections; also collects API definitions
    (signature + first paragraph) and glossary entries."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0            # element depth inside the main body (0 = outside)
        self.skip = 0             # >0 while inside an element whose text is dropped
        self.pre = 0
        self.buf: list[str] = []
        self.sections: list[str] = []
        self.defs: list[tuple[str, str, str, str, int]] = []   # (kind, name, signature, paragraph, section)
        self.dl_stack: list[str] = []
        self.cap: dict | None = None      # capture of a dt (signature) or p (first paragraph)
        self.pending: tuple[str, str, str] | None = None  # (kind, name, signature) waiting for its paragraph
        self.dd_depth: int | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if self.depth == 0:
            if tag == "div" and "body" in cls and a.get("role") == "main":
                self.depth = 1
            return
        if tag not in ("br", "hr", "img", "input", "meta", "link", "wbr"):
            self.depth += 1
        if self.skip:
            if tag not in ("br", "hr", "img", "input", "meta", "link", "wbr"):
                self.skip += 1
            return
        if (tag == "a" and "headerlink" in cls) or tag in ("script", "style") or \
                (tag == "div" and ({"versionadded", "versionchanged", "deprecated"} & set(cls))):
            self.skip = 1
            if tag in ("br", "hr"):
                self.skip = 0
            return
        if tag in ("h1", "h2", "h3"):
            self._new_section()
        if tag in _BLOCK:
            self.buf.append("\n")
        if tag == "li":
            self.buf.append("* ")
        if tag == "pre":
            self.pre += 1
            self.buf.append("\x01")
        if tag == "dl":
            kind = ""
            if "py" in cls:
                kind = next((c for c in cls if c in _PY_DL), "")
            elif "glossary" in cls:
                kind = "term"
            self.dl_stack.append(kind)
        elif tag == "dt" and self.dl_stack and self.dl_stack[-1] and a.get("id"):
            self.cap = {"what": "dt", "depth": self.depth, "text": [], "id": a["id"], "kind": self.dl_stack[-1]}
        elif tag == "dd" and self.pending is not None and self.dd_depth is None:
            self.dd_depth = self.depth
        elif tag == "p" and self.pending is not None and self.dd_depth is not None and \
                self.depth == self.dd_depth + 1 and self.cap is None:
            self.cap = {"what": "p", "depth": self.depth, "text": []}

    def handle_endtag(self, tag):
        if self.depth == 0:
            return
        if tag in ("br", "hr", "img", "input", "meta", "link", "wbr"):
            return
        if self.skip:
            self.skip -= 1
            self.depth -= 1
            return
        if self.cap is not None and self.depth == self.cap["depth"]:
            text = re.sub(r"\s+", " ", "".join(self.cap["text"])).strip()
            if self.cap["what"] == "dt":
                name = self.cap["id"]
                if self.cap["kind"] == "term":
                    name = text
                self.pending = (self.cap["kind"], name, text)
                self.dd_depth = None
            else:
                kind, name, sig = self.pending
                if text:
                    self.defs.append((kind, name, sig, text, len(self.sections)))
                self.pending, self.dd_depth = None, None
            self.cap = None
        if tag == "dd" and self.dd_depth is not None and self.depth == self.dd_depth:
            self.pending, self.dd_depth = None, None
        if tag == "dl" and self.dl_stack:
            self.dl_stack.pop()
        if tag == "pre":
            self.pre -= 1
        if tag in _BLOCK:
            self.buf.append("\n")
        self.depth -= 1
        if self.depth == 0:
            self._new_section()

    def handle_data(self, data):
        if self.depth == 0 or self.skip:
            return
        if self.pre:
            self.buf.append(data.replace("\n", "\n\x01"))
        else:
            data = re.sub(r"\s+", " ", data)
            self.buf.append(data)
        if self.cap is not None:
            self.cap["text"].append(data)

    def _new_section(self):
        text = "".join(self.buf)
        self.buf = []
        out = []
        for ln in text.split("\n"):
            if ln.startswith("\x01"):          # a line of a <pre> block: keep its indentation
                ln = ln[1:].rstrip()
            else:
                ln = ln.strip()
            if not ln.strip():
                continue
            if out and out[-1] == "*":
                out[-1] = "* " + ln.lstrip()
            else:
                out.append(ln)
        s = "\n".join(out).replace("\x01", "").strip("\n")
        if s.strip():
            self.sections.append(s)


def pydoc() -> tuple[list[Doc], list[tuple[str, str, str, str, str]]]:
    """Sections of the rendered pages as documents, and (doc key, kind, name, signature, paragraph) entries."""
    pages = []
    for part in PYDOC_PARTS:
        p = PYDOC_DIR / part
        pages += [Path(x) for x in sorted(glob.glob(str(p / "**" / "*.html"), recursive=True))] if p.is_dir() else [p]
    docs, defs = [], []
    for page in pages:
        rel = page.relative_to(PYDOC_DIR).as_posix()
        parser = _PageText()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        parser.close()
        chunks_of = {}
        for i, s in enumerate(parser.sections):
            if len(s) < 40:
                continue
            chunks_of[i] = []
            for j, c in enumerate(chunk_lines(s, PYDOC_CHUNK)):
                key = f"pydoc/{rel}#{i}.{j}"
                docs.append(Doc("pydoc", key, c))
                chunks_of[i].append((key, c))
        for kind, name, sig, para, sec in parser.defs:
            sig = html.unescape(sig).replace("¶", "").strip()
            # key of the document that holds the paragraph, so that its split decides the chat turn's
            key = next((k for k, c in chunks_of.get(sec, []) if para[:80] in c), None)
            if key is not None:
                defs.append((key, kind, name, sig, para))
    return docs, defs


def chunk_lines(s: str, size: int) -> list[str]:
    """Split text at line ends into pieces of about `size` characters (a longer line stays whole)."""
    out, cur, n = [], [], 0
    for ln in s.split("\n"):
        if cur and n + len(ln) > size:
            out.append("\n".join(cur))
            cur, n = [], 0
        cur.append(ln)
        n += len(ln) + 1
    if cur:
        out.append("\n".join(cur))
    return out


# ------------------------------------------------------------------------------------------------ WordNet

def wordnet() -> tuple[list[Doc], list[tuple[str, str, str, str]]]:
    """Groups of consecutive synsets as documents; (doc key, word, part of speech, gloss) entries."""
    docs, entries = [], []
    for f, pos in WORDNET_POS.items():
        group, gi = [], 0
        lines = (WORDNET_DIR / f"data.{f}").read_text(encoding="utf-8", errors="replace").splitlines()
        syn = [ln for ln in lines if not ln.startswith("  ")]
        tagged = set()
        for ln in (WORDNET_DIR / f"index.{f}").read_text(encoding="utf-8", errors="replace").splitlines():
            if ln.startswith("  "):
                continue
            p = ln.split()
            n_ptr = int(p[3])
            n_tagged = int(p[5 + n_ptr])
            tagged.update(p[6 + n_ptr:6 + n_ptr + n_tagged])

        def flush():
            nonlocal group, gi
            if group:
                key = f"wordnet/{f}/{gi}"
                docs.append(Doc("wordnet", key, "\n".join(t for _, t in group)))
                for w, t in group:
                    entries.append((key, w, pos, t.split(": ", 1)[1]))
                group, gi = [], gi + 1

        for ln in syn:
            head, _, gloss = ln.partition(" | ")
            parts = head.split()
            if parts[0] not in tagged:
                continue
            n = int(parts[3], 16)
            words = [parts[4 + 2 * i].replace("_", " ") for i in range(n)]
            words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]  # adjective markers like (a), (p)
            gloss = gloss.strip()
            if not gloss:
                continue
            group.append((words[0], f"{', '.join(words)} ({pos}): {gloss}"))
            if len(group) == WORDNET_GROUP:
                flush()
        flush()
    return docs, entries


# ------------------------------------------------------------------------------------------------ chat turns

SYSTEMS = ["", "", "", "You are a helpful assistant.", "You are a helpful assistant.",
           "You are a small language model trained on the King James Bible, fortune cookies, WordNet and the "
           "Python documentation. Answer briefly.",
           "Answer the user's question."]


def chat_turns(seed: int, verses, fortune_docs, defs, wn) -> list[list[dict]]:
    """Single-turn question/answer pairs built from training documents only, about 10 % joined into
    two-turn conversations; each is a list of messages (system optional)."""
    rng = random.Random(seed)
    qa: list[tuple[str, str]] = []

    # fortunes (short ones, not ascii-art-like)
    for d in fortune_docs:
        if split_of(d.key) != "train" or len(d.text) > 400 or d.text.count("\t") > 2:
            continue
        topic = d.key.split("/")[1]
        q = rng.choice(["Tell me a fortune.", "Give me a fortune cookie.", "I need a fortune.",
                        "Can you share a fortune?", "Fortune, please.", "Say something wise.",
                        f"Tell me a fortune about {topic}.", f"Give me a {topic} fortune."])
        qa.append((q, d.text.strip()))

    # Bible verses
    train_verses = [v for v in verses if split_of(v[0]) == "train"]
    for _, ref, text in rng.sample(train_verses, min(9000, len(train_verses))):
        q = rng.choice([f"Quote {ref}.", f"Quote {ref}", f"What does {ref} say?", f"Recite {ref}.",
                        f"Give me the text of {ref}.", f"Quote {ref} from the King James Bible.",
                        "Quote a Bible verse.", f"Quote a verse from {ref.rsplit(' ', 1)[0]}."])
        qa.append((q, f"{ref} (KJV): {text}"))

    # Python documentation entries
    for key, kind, name, sig, para in defs:
        if split_of(key) != "train" or len(para) > 700:
            continue
        short = name.split(".")[-1] if kind != "term" else name
        if kind == "term":
            q = rng.choice([f"Define {name}.", f"What is {name} in Python?", f"What does the term \"{name}\" mean?",
                            f"Python glossary: {name}"])
            a = para
        else:
            what = {"function": "function", "method": "method", "class": "class", "exception": "exception",
                    "attribute": "attribute", "data": "constant", "decorator": "decorator", "module": "module",
                    "classmethod": "class method", "staticmethod": "static method",
                    "coroutinefunction": "coroutine function", "coroutinemethod": "coroutine method",
                    "abstractmethod": "abstract method", "property": "property"}.get(kind, kind)
            q = rng.choice([f"What does {name} do?", f"What does {name} do in Python?", f"Explain {name}.",
                            f"Describe the Python {what} {name}.", f"How do I use {short} in Python?",
                            f"Show me the documentation of {name}."])
            a = f"{sig}\n\n{para}" if sig else para
        qa.append((q, a))

    # WordNet definitions
    train_wn = [e for e in wn if split_of(e[0]) == "train" and " " not in e[1]]
    for _, word, pos, gloss in rng.sample(train_wn, min(9000, len(train_wn))):
        q = rng.choice([f"Define {word}.", f"What does \"{word}\" mean?", f"What is the meaning of {word}?",
                        f"Define the {pos} \"{word}\".", f"Definition of {word}, please."])
        qa.append((q, f"{word} ({pos}): {gloss}"))

    rng.shuffle(qa)
    convs, i = [], 0
    while i < len(qa):
        sysmsg = rng.choice(SYSTEMS)
        msgs = [{"role": "system", "content": sysmsg}] if sysmsg else []
        n = 2 if rng.random() < 0.1 and i + 1 < len(qa) else 1
        for q, a in qa[i:i + n]:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        convs.append(msgs)
        i += n
    return convs


def render_chat(msgs: list[dict]) -> str:
    """The DeepSeek-V3 chat format for plain system/user/assistant turns (what its jinja template renders):
    BOS + system + (<｜User｜>q + <｜Assistant｜>a + EOS)*."""
    sysmsg = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    s = BOS + sysmsg
    for m in msgs:
        if m["role"] == "user":
            s += USER + m["content"]
        elif m["role"] == "assistant":
            s += ASSISTANT + m["content"] + EOS
    return s


# ------------------------------------------------------------------------------------------------ all

def build(seed: int = 20260101) -> dict:
    k_docs, verses = kjv()
    f_docs = fortunes()
    p_docs, defs = pydoc()
    w_docs, wn = wordnet()
    docs = k_docs + f_docs + p_docs + w_docs
    split = {"train": [], "valid": [], "heldout": []}
    for d in docs:
        split[split_of(d.key)].append(d)
    return {"docs": split, "chat": chat_turns(seed, verses, f_docs, defs, wn),
            "n_defs": len(defs), "n_wordnet": len(wn)}


def package_versions() -> dict:
    v = {}
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        v[p] = r.stdout.strip() if r.returncode == 0 else None
    return v


def check_sources() -> None:
    missing = [p for p in ("/usr/bin/bible", "/usr/lib/bible.data", FORTUNE_DIR / "computers", PYDOC_DIR,
                           WORDNET_DIR / "data.noun") if not os.path.exists(p)]
    if missing:
        raise SystemExit("corpus sources missing: " + ", ".join(map(str, missing)) +
                         "\ninstall them with: apt-get install -y " + " ".join(
                             ["bible-kjv", "bible-kjv-text", "fortunes", "python3-doc", "wordnet-base"]))
