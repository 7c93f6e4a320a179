"""Streaming splitter for SurrealQL scripts such as the dumps written by `surreal export`.

The importer feeds dumps of many hundreds of MB through this, so the splitter is a real
tokenizer that works on arbitrary chunks of text and keeps only the current, unfinished
statement in memory. It knows just enough SurrealQL lexing to find the `;` that end
statements:

* strings `'..'` / `".."` (also prefixed ones like `r'..'`, `d'..'`, `b".."`), identifiers in
  backticks and in ``⟨..⟩``: a backslash escapes the next character, raw newlines are allowed;
* comments `-- ..`, `// ..`, `# ..` (to end of line) and `/* .. */` (not nested);
* `{}`, `()` and `[]` nesting: only a `;` at depth 0 ends a statement.

ASCII `<` / `>` are operators or casts, never quotes. Regex literals (`/^a.*$/`) are not
recognised (telling them from division needs a parser): one that contains a quote, `;`,
an unbalanced bracket or `//` / `/*` / `--` / `#` can be mis-split.

Speed comes from never looping over ordinary characters in Python: one regex skips
ordinary code together with complete string literals and quoted identifiers, and lines
are counted with `str.count` over the skipped spans. Python only sees brackets, `;`,
comment openers and tokens cut by a piece boundary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

__all__ = ["SplitError", "Statement", "iter_statements", "iter_statements_from_file"]


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: `text` has no terminating `;` and no surrounding whitespace."""

    text: str
    line: int  # 1-based line of the statement's first non-whitespace, non-comment character
    #: False only for a last statement that the input ends inside of (no `;` at depth 0):
    #: a dump always ends its statements, so this is how a truncated one shows.
    terminated: bool = True


class SplitError(ValueError):
    """The script cannot be split, e.g. it ends inside a string or block comment."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[type[SplitError], tuple[int, str]]:
        # The default would call SplitError(str(self)), which lacks an argument.
        return (type(self), (self.line, self.message))


# Characters the code scanner stops at. `-` and `/` only matter as `--`, `//`, `/*`, or as the
# last character of a piece (the next piece may complete the comment opener).
_STOP = r"""\-/'"`⟨{}()\[\];#"""
_SKIP_WS = re.compile(r"\s*")


def _quoted(open_: str, close: str) -> str:
    """Regex source for a complete quoted token; a backslash escapes the next char."""
    c = re.escape(close)
    return rf"{re.escape(open_)}[^{c}\\]*+(?:\\.[^{c}\\]*+)*+{c}"


def _body(close: str) -> re.Pattern[str]:
    """Regex for the inside of a quoted token: stops at `close`, a trailing `\\`, or the end."""
    c = re.escape(close)
    return re.compile(rf"[^{c}\\]*(?:\\.[^{c}\\]*)*", re.DOTALL)


# Skips ordinary code in C: everything but brackets, `;` and comment openers, including
# complete string literals and quoted identifiers, and the `-` / `/` of negative numbers,
# `->` or division. It stops at a quote only if the token does not end in this piece.
_SKIP_CODE = re.compile(
    rf"""[^{_STOP}]*+(?:(?:{_quoted("'", "'")}|{_quoted('"', '"')}|{_quoted("`", "`")}"""
    rf"""|{_quoted("⟨", "⟩")}|-(?!-|\Z)|/(?![/*]|\Z))[^{_STOP}]*+)*+""",
    re.DOTALL,
)


# opening char -> (closing char, body regex, what it is for error messages)
_QUOTES: dict[str, tuple[str, re.Pattern[str], str]] = {
    "'": ("'", _body("'"), "string"),
    '"': ('"', _body('"'), "string"),
    "`": ("`", _body("`"), "backtick identifier"),
    "⟨": ("⟩", _body("⟩"), "⟨⟩ identifier"),
}
_OPEN = frozenset("{([")
_CLOSE = frozenset("})]")

# Lexical states.
_CODE = 0
_QUOTED = 1
_LINE_COMMENT = 2
_BLOCK_COMMENT = 3


def iter_statements(chunks: Iterable[str]) -> Iterator[Statement]:
    """Split SurrealQL text, given as consecutive pieces of any size, into statements.

    Tokens may straddle piece boundaries. Empty statements are skipped, comments between
    statements (and trailing a statement) are dropped, and a last statement without `;` is
    yielded. Raises `SplitError` if the text ends inside a string, quoted identifier or
    block comment.
    """
    state = _CODE
    close = ""  # closing char of the open quoted token
    body = _QUOTES["'"][1]  # body regex of the open quoted token
    kind = ""  # name of the open string / identifier / block comment
    open_pos = 0  # where that construct opened, in the current piece
    open_line = 0  # its line, 0 until computed (lazily, see the end of each piece)
    in_stmt = False
    depth = 0
    parts: list[str] = []  # text of the current statement from earlier pieces
    acc = 0  # total length of `parts`
    cut = -1  # offset in the statement where a trailing run of comments starts, or -1
    stmt_line = 0
    line = 1  # line number at position `lpos` of the current piece
    carry = ""  # an undecided last char (`-`, `/`, `*`, `\`) prepended to the next piece
    it = iter(chunks)
    eof = False
    at_start = True

    while not eof:
        chunk = next(it, None)
        if chunk is None:
            eof = True
            s = carry
        else:
            s = carry + chunk if carry else chunk
        carry = ""
        n = len(s)
        i = 0
        if at_start and s:
            at_start = False
            if s[0] == "\ufeff":  # a byte order mark is not part of the text
                i = 1
        lpos = 0
        seg = 0  # start of the current statement's text within `s`

        while i < n:
            if state == _CODE:
                if not in_stmt:
                    # Between statements: skip whitespace, comments and empty statements.
                    i = _SKIP_WS.match(s, i).end()
                    if i >= n:
                        break
                    c = s[i]
                    if c == ";":
                        i += 1
                        continue
                    if c == "#":
                        state = _LINE_COMMENT
                        i += 1
                        continue
                    if c == "-" or c == "/":
                        nxt = s[i + 1] if i + 1 < n else ""
                        if nxt == "" and not eof:
                            carry = c
                            n = i
                            break
                        if nxt == c or (c == "/" and nxt == "*"):
                            if nxt == "*":
                                state = _BLOCK_COMMENT
                                kind = "block comment"
                                open_pos = i
                                open_line = 0
                            else:
                                state = _LINE_COMMENT
                            i += 2
                            continue
                    in_stmt = True
                    line += s.count("\n", lpos, i)
                    lpos = i
                    stmt_line = line
                    seg = i
                    depth = 0
                    parts = []
                    acc = 0
                    cut = -1

                p = _SKIP_CODE.match(s, i).end()
                if cut >= 0 and p > i and not s[i:p].isspace():
                    cut = -1
                if p >= n:
                    i = n
                    break
                c = s[p]
                i = p + 1
                if c == ";":
                    if depth == 0:
                        text = s[seg:p]
                        if parts:
                            parts.append(text)
                            text = "".join(parts)
                            parts = []
                        if cut >= 0:
                            text = text[:cut]
                        text = text.rstrip()
                        if text:
                            yield Statement(text, stmt_line)
                        in_stmt = False
                    else:
                        cut = -1
                elif c in _OPEN:
                    depth += 1
                    cut = -1
                elif c in _CLOSE:
                    if depth:
                        depth -= 1
                    cut = -1
                elif c in _QUOTES:
                    close, body, kind = _QUOTES[c]
                    state = _QUOTED
                    open_pos = p
                    open_line = 0
                    cut = -1
                elif c == "#":
                    if cut < 0:
                        cut = acc + p - seg
                    state = _LINE_COMMENT
                elif p == n - 1:
                    # A lone `-` / `/` ending the piece: maybe the first half of a comment opener.
                    if eof:
                        cut = -1
                    else:
                        carry = c
                        n = p
                        break
                else:
                    # `--`, `//` or `/*` (the skip regex stops at no other `-` / `/`).
                    if cut < 0:
                        cut = acc + p - seg
                    if s[i] == "*":
                        state = _BLOCK_COMMENT
                        kind = "block comment"
                        open_pos = p
                        open_line = 0
                    else:
                        state = _LINE_COMMENT
                    i += 1

            elif state == _QUOTED:
                j = body.match(s, i).end()
                if j >= n:
                    i = n
                elif s[j] == close:
                    state = _CODE
                    i = j + 1
                else:
                    # A backslash ending the piece: its escaped char is in the next piece.
                    if not eof:
                        carry = s[j:]
                        n = j
                    i = n

            elif state == _LINE_COMMENT:
                j = s.find("\n", i)
                if j < 0:
                    i = n
                else:
                    state = _CODE
                    i = j + 1

            else:  # _BLOCK_COMMENT
                j = s.find("*/", i)
                if j >= 0:
                    state = _CODE
                    i = j + 2
                else:
                    if not eof and s[n - 1] == "*":
                        carry = "*"
                        n -= 1
                    i = n

        # End of this piece: settle line numbers and keep the statement's text so far.
        if state in (_QUOTED, _BLOCK_COMMENT) and open_line == 0:
            open_line = line + s.count("\n", lpos, open_pos)
        line += s.count("\n", lpos, n)
        if in_stmt and n > seg:
            parts.append(s[seg:n])
            acc += n - seg

    if state in (_QUOTED, _BLOCK_COMMENT):
        raise SplitError(open_line, f"unterminated {kind} starting at line {open_line}")
    if in_stmt:
        text = "".join(parts)
        if cut >= 0:
            text = text[:cut]
        text = text.rstrip()
        if text:
            yield Statement(text, stmt_line, terminated=False)


def iter_statements_from_file(fp: TextIO, chunk_size: int = 1 << 20) -> Iterator[Statement]:
    """Split a text file (open it with `newline=''` to keep line numbers exact)."""

    def chunks() -> Iterator[str]:
        while chunk := fp.read(chunk_size):
            yield chunk

    return iter_statements(chunks())
