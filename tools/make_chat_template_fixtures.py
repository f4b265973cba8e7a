#!/usr/bin/env python3
"""Writes tests/data/chat/cases.jsonl: conversations rendered with the official DeepSeek chat templates.

Usage: python3 tools/make_chat_template_fixtures.py [--shared DIR] [--out FILE]

Each official Jinja template is rendered exactly as Hugging Face `tokenizer.apply_chat_template(messages,
tokenize=False, add_generation_prompt=...)` renders it: through transformers' own
`render_jinja_template` (the function apply_chat_template calls, with the same sandboxed Jinja environment:
trim_blocks, lstrip_blocks, loopcontrols), given `messages`, `add_generation_prompt` and the special tokens
(`bos_token`, `eos_token`, ...) as template variables. Every result is also rendered with a plain jinja2
environment configured the same way, and the two must agree. `add_bos: false` cases pass `bos_token=""`
(apply_chat_template lets keyword arguments override the special tokens).

The C++ test (tests/unit/chat) compares hmoe::chat::render() with every `expected` string byte for byte. Only
rendered outputs are written to tests/data; the DeepSeek-V3 template itself stays in ../shared.

Where the template texts come from:
  DeepSeekV3: read at run time from DIR/deepseek-v3-tokenizer/tokenizer_config.json (key "chat_template"), the
              DeepSeek-V3 tokenizer files in ../shared/data (see their SOURCE.md). Not copied into the repo.
  DeepSeekV2: the "chat_template" of deepseek-ai/DeepSeek-V2-Chat and DeepSeek-V2-Lite-Chat
              (tokenizer_config.json on huggingface.co), as quoted verbatim in llama.cpp's
              tests/test-chat-template.cpp (test case "DeepSeek-V2"; the copy vendored in the llama-cpp-python
              0.3.36 sdist that tools/README.md fetches into .deps/).
  DeepSeekR1: the "chat_template" of deepseek-ai/DeepSeek-R1 (tokenizer_config.json on huggingface.co), in
              the revision of February 2025 whose generation prompt is '<｜Assistant｜><think>\\n'. Written out
              from memory and checked against a public verbatim quote of that file; it is the V3 template
              with tool-call content support, the `</think>` stripping of assistant history and the `<think>\\n`
              generation prompt.

Deterministic: no randomness, stable key order; re-running with the same inputs rewrites the same bytes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO = Path(__file__).resolve().parent.parent

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

# deepseek-ai/DeepSeek-V2-Chat (and V2-Lite-Chat) tokenizer_config.json "chat_template"; see the module docstring.
V2_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}"
)

# deepseek-ai/DeepSeek-R1 tokenizer_config.json "chat_template" (February 2025 revision); see the docstring.
R1_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}"
    "{%- else %}"
    "{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + "
    "'\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + "
    "'```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)


def S(c: str) -> dict:
    return {"role": "system", "content": c}


def U(c: str) -> dict:
    return {"role": "user", "content": c}


def A(c: str) -> dict:
    return {"role": "assistant", "content": c}


# (name, messages). Roles are system / user / assistant only: the set hmoe::chat::render() supports. No empty
# conversation: apply_chat_template refuses one ("Cannot apply chat template to an empty conversation"), and so
# does render().
CONVERSATIONS: list[tuple[str, list[dict]]] = [
    ("user", [U("Hello!")]),
    ("system-user", [S("You are a helpful assistant."), U("What is 2+2?")]),
    ("system-only", [S("Be brief.")]),
    ("multi-turn", [
        S("You are a helpful assistant."),
        U("Hi"),
        A("Hello! How can I help?"),
        U("Tell me a joke."),
        A("Why did the chicken cross the road?"),
        U("Why?"),
    ]),
    ("ends-with-assistant", [U("Say hi"), A("hi")]),
    ("no-system-multi-turn", [U("a"), A("b"), U("c")]),
    ("unicode", [
        S("Réponds en français. 你好，世界！"),
        U("Ünïcödé → 😀 emoji, 日本語, עברית, e\u0301 (combining), \u200bzero-width"),
        A("D'accord 👍 — 好的"),
        U("Ещё раз?"),
    ]),
    ("think-history", [
        U("What is 3*7?"),
        A("<think>\n3*7 = 21.\n</think>\n\nThe answer is 21."),
        U("And 4*5?"),
    ]),
    ("think-history-two-closes", [
        U("q"),
        A("<think>first</think>middle</think> final"),
        U("q2"),
    ]),
    ("think-only", [U("q"), A("<think>nothing to say</think>"), U("q2")]),
    ("think-unclosed", [U("q"), A("<think>never closed"), U("q2")]),
    ("think-last-assistant", [U("q"), A("<think>reasoning</think>answer")]),
    ("empty-contents", [S(""), U(""), A(""), U("")]),
    ("empty-system-then-user", [S(""), U("x")]),
    ("two-systems", [S("First rule."), U("hi"), S("Second rule."), U("again")]),
    ("system-after-user", [U("hi"), S("Late system.")]),
    ("newlines-and-spaces", [
        S("  leading and trailing  \n"),
        U("\n\nline1\nline2\n\n"),
        A("   spaced   "),
        U("\tTab"),
    ]),
    ("special-token-text", [U("<｜User｜>literal<｜Assistant｜> and <｜end▁of▁sentence｜> in text"), A("ok</think>")]),
    ("jinja-like-text", [U("{{ bos_token }} {% if x %} {# c #} \\n"), A("{{'x'}}")]),
]

# (add_generation_prompt, add_bos) combinations rendered for every conversation.
OPTIONS = [(True, True), (False, True), (True, False)]


def read_v3_template(shared: Path) -> str:
    cfg = shared / "deepseek-v3-tokenizer" / "tokenizer_config.json"
    if not cfg.exists():
        sys.exit(f"error: {cfg} is absent; the DeepSeek-V3 template is read from there (use --shared DIR)")
    with open(cfg, encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def plain_jinja(template: str, messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=EOS)


def hf_render(template: str, messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages],
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        # The special tokens map of the DeepSeek tokenizers (what apply_chat_template passes), bos overridden.
        bos_token=bos, eos_token=EOS, pad_token=EOS)
    return rendered[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data directory holding deepseek-v3-tokenizer/ (default: ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "chat" / "cases.jsonl")
    ap.add_argument("--no-transformers", action="store_true",
                    help="render with plain jinja2 only (default: transformers' renderer, checked against jinja2)")
    args = ap.parse_args()

    templates = {
        "DeepSeekV2": V2_TEMPLATE,
        "DeepSeekV3": read_v3_template(args.shared),
        "DeepSeekR1": R1_TEMPLATE,
    }

    lines = []
    for tname, template in templates.items():
        for cname, messages in CONVERSATIONS:
            for gen, add_bos in OPTIONS:
                bos = BOS if add_bos else ""
                expected = plain_jinja(template, messages, gen, bos)
                if not args.no_transformers:
                    hf = hf_render(template, messages, gen, bos)
                    if hf != expected:
                        sys.exit(f"error: transformers and jinja2 disagree on {tname}/{cname}: {hf!r} vs {expected!r}")
                case = {
                    "template": tname,
                    "name": cname,
                    "add_generation_prompt": gen,
                    "add_bos": add_bos,
                    "messages": messages,
                    "expected": expected,
                }
                lines.append(json.dumps(case, ensure_ascii=False, sort_keys=False))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    print(f"wrote {len(lines)} cases to {args.out} (jinja2 {jinja2.__version__})")


if __name__ == "__main__":
    main()
