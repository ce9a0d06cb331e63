"""How keepalived splits a script line into argv (misc_path, script, notify…).

keepalived takes the rest of the line as one string and splits it itself, with
no shell: blanks separate words, '…' and "…" group, C escapes apply (twice
before keepalived 2.3.2, which also took every hex digit after \\x). The doctor
judges script lines with this and the agent runs misc_path lines with it, so
both read a line exactly as keepalived does.
"""

import re

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v"}
BLANK = " \t\f\n\r\v"


class Dialect:
    """How the installed keepalived splits a script line (it changed in 2.3.2)."""

    __slots__ = ("escape_twice", "hex_digits")

    def __init__(self, version=None):
        modern = version is None or version >= (2, 3, 2)
        self.escape_twice = not modern  # 2.2.7 processes escapes on the line, then again
        self.hex_digits = 2 if modern else None  # \xHH…: 2.2.7 takes every hex digit


class CommandError(Exception):
    """keepalived cannot split this script line (it drops the script)."""


_QUOTED_WORD = re.compile(r"""(?:'[^']*'|"[^"]*"|[^ \t\f\n\r\v'"])+""")
_QUOTES = re.compile(r"'([^']*)'|" + r'"([^"]*)"')


def split_command(text, escapes=True, hex_digits=2):
    """keepalived's alloc_strvec_quoted_escaped: words, '…'/"…" groups, C escapes."""
    if "\\" not in text:  # the common case, without a character-by-character walk
        found = _QUOTED_WORD.findall(text)
        if not _QUOTED_WORD.sub("", text).strip(BLANK):
            return [_QUOTES.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), w)
                    for w in found]
    words = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in BLANK:
            i += 1
        if i >= n:
            return words
        word = []
        quote = None
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    raise CommandError(f"missing escape character at the end of {text!r}")
                if not escapes:
                    word.append("\\" + text[i])
                    i += 1
                    continue
                i = _escape(text, i, word, hex_digits)
                continue
            if quote is not None:
                if c == quote:
                    quote = None
                else:
                    word.append(c)
                i += 1
                continue
            if c in "'\"":
                quote = c
                i += 1
                continue
            if c in BLANK:
                break
            word.append(c)
            i += 1
        if quote is not None:
            raise CommandError(f"missing terminating {quote} in {text!r}")
        words.append("".join(word))


def _escape(text, i, word, hex_digits):
    c = text[i]
    n = len(text)
    if c == "x" and i + 1 < n and text[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        while j < n and text[j] in "0123456789abcdefABCDEF" and (hex_digits is None or j - i <= hex_digits):
            j += 1
        word.append(chr(int(text[i + 1:j], 16) & 0xFF))
        return j
    if c == "c" and i + 1 < n:
        word.append(chr(ord(text[i + 1]) & 0x1F))
        return i + 2
    if c in "01234567":
        j = i
        while j < n and j < i + 3 and text[j] in "01234567":
            j += 1
        word.append(chr(int(text[i:j], 8) & 0xFF))
        return j
    word.append(_SIMPLE_ESCAPES.get(c, c))
    return i + 1
