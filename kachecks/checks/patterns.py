"""Command-line regular expressions, compiled once with a usage error on bad syntax.

Patterns run over raw bytes (bodies, banners), so they are compiled as bytes;
``re`` is imported only by runs that use a pattern.
"""

from kachecks.errors import UsageError


def compile_option(option, text, needs_group=False):
    """The compiled bytes pattern for ``option`` (None when ``text`` is None)."""
    if text is None:
        return None
    import re

    try:
        pattern = re.compile(text.encode("utf-8", "surrogateescape"), re.MULTILINE)
    except re.error as exc:
        raise UsageError(f"{option}: bad regular expression: {exc}") from None
    if needs_group and pattern.groups < 1:
        raise UsageError(f"{option} needs a capture group, e.g. 'weight=(\\d+)'")
    return pattern
