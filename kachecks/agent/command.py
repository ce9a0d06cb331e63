"""A ``misc_path`` string split into argv exactly as keepalived splits it.

keepalived takes the quoted text after ``misc_path`` (or ``script``) and
splits it once more: blanks separate words, single and double quotes group,
and backslash escapes are decoded everywhere, even inside single quotes
(``\\n``, ``\\t``, ``\\E``, octal ``\\NNN``, ``\\xHH``, ``\\cX``; any other
``\\C`` is C). The text of a ``command`` key is that quoted text, so a line
copied from keepalived.conf runs with the same arguments in the agent.
(keepalived before 2.3.2 decoded escapes twice; the single pass is what
both versions agree on for every line without backslashes.)
"""

from kachecks.errors import UsageError

BLANKS = b" \t\n\r\f\v"
SIMPLE = {ord("a"): 7, ord("b"): 8, ord("E"): 27, ord("f"): 12, ord("n"): 10,
          ord("r"): 13, ord("t"): 9, ord("v"): 11}
HEX = b"0123456789abcdefABCDEF"
OCTAL = b"01234567"


def split(text):
    """argv for ``text``; UsageError for an unmatched quote or a trailing backslash."""
    data = text.encode("utf-8", "surrogateescape")
    words = []
    i, n = 0, len(data)
    while i < n:
        while i < n and data[i] in BLANKS:
            i += 1
        if i >= n:
            break
        word = bytearray()
        quote = None
        while i < n:
            c = data[i]
            if c == 0x5C:  # backslash
                i += 1
                if i >= n:
                    raise UsageError(f"command ends with a lone backslash: {text!r}")
                i = _escape(data, i, word)
            elif quote is not None:
                if c == quote:
                    quote = None
                else:
                    word.append(c)
                i += 1
            elif c in (0x22, 0x27):  # " or '
                quote = c
                i += 1
            elif c in BLANKS:
                break
            else:
                word.append(c)
                i += 1
        if quote is not None:
            raise UsageError(f"missing terminating {chr(quote)} in command {text!r}")
        words.append(bytes(word).decode("utf-8", "surrogateescape"))
    return words


def _escape(data, i, word):
    """Decode the escape whose letter is at ``data[i]``; return the index after it."""
    c = data[i]
    if c == ord("x") and i + 1 < len(data) and data[i + 1] in HEX:
        j = i + 1
        while j < len(data) and j < i + 3 and data[j] in HEX:
            j += 1
        word.append(int(data[i + 1:j], 16))
        return j
    if c == ord("c") and i + 1 < len(data):
        word.append(data[i + 1] & 0x1F)
        return i + 2
    if c in OCTAL:
        j = i
        while j < len(data) and j < i + 3 and data[j] in OCTAL:
            j += 1
        word.append(int(data[i:j], 8) & 0xFF)  # keepalived stores it in a char
        return j
    word.append(SIMPLE.get(c, c))
    return i + 1
