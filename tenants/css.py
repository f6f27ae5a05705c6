"""Tenant custom CSS, parsed with tinycss2 and rebuilt from what is safe to keep.

Kept: style rules, and inside @media and @supports more of them; @font-face and @keyframes.
Dropped, each noted for the tenant: @import, @charset, @namespace and every other at-rule;
declarations that load or run something (`behavior`, `-moz-binding`, `expression(…)`,
`javascript:`), or that fetch a URL other than an https: one or a data: image; anything that
does not parse. A `<` never survives (it is escaped), so the CSS cannot close the <style>
element it is put in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tinycss2
from tinycss2 import ast

NESTED = {"media", "supports"}
DECLARED = {"font-face"}
KEPT_AS_IS = {"keyframes", "-webkit-keyframes"}
BANNED_PROPERTIES = {"behavior", "-moz-binding", "-ms-behavior"}
# image() and image-set() take a bare string as a URL, out of reach of the url() check.
BANNED_FUNCTIONS = {
    "expression", "-moz-binding", "image", "image-set", "-webkit-image-set", "env",
}  # fmt: skip
SAFE_URL = re.compile(r"^(https://|data:image/(png|jpeg|gif|webp)[;,])", re.I)
# tinycss2 parses and serialises nested blocks recursively: deeper than this, a stylesheet
# is refused whole rather than risk the interpreter's recursion limit.
MAX_DEPTH = 64


@dataclass
class Cleaned:
    """Custom CSS rebuilt from what is safe, and what was taken out (for the admin)."""

    css: str
    removed: list[str] = field(default_factory=list)


def _bad_token(tokens: list, removed: list[str]) -> str | None:
    """Why these tokens may not stay (None: they may)."""
    for token in tokens:
        if isinstance(token, ast.ParseError):
            return f"something that is not CSS ({token.message})"
        if isinstance(token, ast.URLToken) and not SAFE_URL.match(token.value.strip()):
            return f"url({token.value[:60]})"
        if isinstance(token, ast.FunctionBlock):
            name = token.lower_name
            if name in BANNED_FUNCTIONS:
                return f"{name}(…)"
            if name == "url":
                target = "".join(
                    t.value for t in token.arguments if isinstance(t, ast.StringToken)
                ).strip()
                if not SAFE_URL.match(target):
                    return f"url({target[:60]})"
            found = _bad_token(token.arguments, removed)
            if found:
                return found
        if isinstance(token, ast.StringToken | ast.IdentToken) and "javascript:" in (
            token.value.lower()
        ):
            return "javascript:"
        if isinstance(
            token, ast.ParenthesesBlock | ast.SquareBracketsBlock | ast.CurlyBracketsBlock
        ):
            found = _bad_token(token.content, removed)
            if found:
                return found
    return None


def _declarations(content: list, removed: list[str]) -> str:
    kept = []
    for item in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if isinstance(item, ast.Declaration):
            if item.lower_name in BANNED_PROPERTIES:
                removed.append(f"the property {item.lower_name}")
                continue
            why = _bad_token(item.value, removed)
            if why:
                removed.append(f"{item.lower_name}: {why}")
                continue
            value = tinycss2.serialize(item.value).strip()
            kept.append(f"{item.name}: {value}{' !important' if item.important else ''};")
        elif isinstance(item, ast.ParseError):
            removed.append(f"something that is not CSS ({item.message})")
        else:
            removed.append("a rule nested in a declaration block")
    return " ".join(kept)


def _rules(rules: list, removed: list[str]) -> list[str]:
    out = []
    for rule in rules:
        if isinstance(rule, ast.QualifiedRule):
            selector = tinycss2.serialize(rule.prelude).strip()
            why = _bad_token(rule.prelude, removed)
            if why or not selector:
                removed.append(f"a rule with {why or 'no selector'}")
                continue
            out.append(f"{selector} {{ {_declarations(rule.content, removed)} }}")
        elif isinstance(rule, ast.AtRule):
            name = rule.lower_at_keyword
            prelude = tinycss2.serialize(rule.prelude).strip()
            if _bad_token(rule.prelude, removed):
                removed.append(f"@{name} with a forbidden condition")
            elif name in NESTED and rule.content is not None:
                inner = tinycss2.parse_rule_list(
                    rule.content, skip_comments=True, skip_whitespace=True
                )
                out.append(f"@{name} {prelude} {{ {' '.join(_rules(inner, removed))} }}")
            elif name in DECLARED and rule.content is not None:
                out.append(f"@{name} {{ {_declarations(rule.content, removed)} }}")
            elif name in KEPT_AS_IS and rule.content is not None:
                why = _bad_token(rule.content, removed)
                if why:
                    removed.append(f"@{name} with {why}")
                else:
                    out.append(f"@{name} {prelude} {{{tinycss2.serialize(rule.content)}}}")
            else:
                removed.append(f"@{name}")
        elif isinstance(rule, ast.ParseError):
            removed.append(f"something that is not CSS ({rule.message})")
    return out


def _depth(text: str) -> int:
    """How deeply brackets nest in `text`, strings and comments aside (an upper bound is
    enough: it only decides whether the parser may see it)."""
    deepest = depth = 0
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote or char == "\n":  # a newline ends a CSS string too
                quote = ""
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = len(text) if end < 0 else end + 1
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(depth - 1, 0)
        index += 1
    return deepest


def clean_css(text: str) -> Cleaned:
    """The safe part of `text`, and what was taken out."""
    if _depth(text) > MAX_DEPTH:
        return Cleaned(css="", removed=[f"all of it: blocks nest deeper than {MAX_DEPTH} levels"])
    removed: list[str] = []
    try:
        rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
        css = "\n".join(_rules(rules, removed))
    except RecursionError:
        return Cleaned(css="", removed=["all of it: it nests too deeply to read"])
    # Inside a <style> element, `</` would end it: no `<` stays as it is.
    return Cleaned(css=css.replace("<", "\\3c "), removed=removed)
