"""The documentation as data: its links, its headings, the install guide's commands.

One reader for the link checks (the repository's docs, and the same docs installed
under /usr/share/doc/kachecks) and for scripts/test-install-guide, which runs the
guide's ``sh`` blocks as they are written.
"""

import re
from pathlib import Path

FENCE = re.compile(r"^(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
MARKER = re.compile(r"^<!--\s*test-install-guide:\s*(\S+)\s*-->\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, man:


def prose_lines(text):
    """(line number, line) outside fenced code blocks, code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def links(text):
    """(line number, target) of every Markdown link outside code."""
    found = []
    for number, line in prose_lines(text):
        found += [(number, m.group(1)) for m in INLINE_LINK.finditer(line)]
        ref = REFERENCE_DEF.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    """Every heading's anchor, with GitHub's -1, -2 … suffixes for repeats."""
    seen = {}
    result = set()
    for _number, line in _heading_lines(text):
        base = slug(HEADING.match(line).group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def _heading_lines(text):
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            yield number, line


def broken_links(files):
    """["FILE:LINE: TARGET: why"] for links in ``files`` that lead nowhere.

    A relative link must name an existing file (relative to the page), and its
    #anchor, if any, a heading of that page; external links are not followed.
    """
    problems = []
    for page in map(Path, files):
        text = page.read_text(encoding="utf-8")
        for number, target in links(text):
            if EXTERNAL.match(target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            where = f"{page}:{number}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file {dest}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading #{anchor} in {dest.name}")
            elif anchor and dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
    return problems


def guide_steps(text):
    """The install guide as steps, in order: ("sh", block text) or ("marker", name).

    Only fenced blocks opened with ```sh count as commands; other blocks are shown,
    not run. ``<!-- test-install-guide: NAME -->`` lines mark where a test stands in
    for something a root cannot do itself (systemd starting keepalived).
    """
    steps, block, fenced = [], None, False
    for line in text.splitlines():
        stripped = line.strip()
        if FENCE.match(stripped):
            if not fenced:
                fenced = True
                block = [] if stripped in ("```sh", "~~~sh") else None
            else:
                fenced = False
                if block is not None:
                    steps.append(("sh", "\n".join(block) + "\n"))
                block = None
            continue
        if fenced:
            if block is not None:
                block.append(line)
            continue
        marker = MARKER.match(stripped)
        if marker:
            steps.append(("marker", marker.group(1)))
    if fenced:
        raise ValueError("unterminated code block")
    return steps


LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def listed_commands(help_text):
    """The command names a --help lists under "Commands:" (click's layout)."""
    listing = help_text.partition("\nCommands:\n")[2].split("\n\n")[0]
    return re.findall(r"^  ([a-z][a-z-]*)", listing, re.M)


def every_command(run, executables):
    """Each command line that has a --help of its own: ``["kachecks", "spool", "list"]``…

    ``run(*argv)`` runs one (a CompletedProcess); subcommands are found by walking
    the "Commands:" listings, so a new one is covered without being named here.
    """
    found, todo = [], [[name] for name in executables]
    while todo:
        words = todo.pop(0)
        found.append(words)
        todo += [[*words, sub] for sub in listed_commands(run(*words, "--help").stdout)]
    return found


def long_options(help_text):
    """Every ``--option`` a --help text names (in its option lists, prose and examples)."""
    return set(LONG_OPTION.findall(help_text))


OPTION_ENTRY = re.compile(r"^  (--?[A-Za-z0-9].*?)(?:\s{2,}\S.*)?$")
VERBATIM_HEADING = re.compile(r"^(Examples?\b.*|keepalived\.conf\b.*|Differences\b.*):$")
TYPOGRAPHY = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2212": "-", "\u2018": "'",
                            "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def option_entries(help_text):
    """The option spellings of a --help's option lists: ``-s, -H, --server HOST``…"""
    return [m.group(1) for m in map(OPTION_ENTRY.match, help_text.splitlines()) if m]


def verbatim_lines(help_text):
    """The lines of a --help's examples, keepalived.conf snippets and "Differences"
    list, which a man page must keep line for line."""
    lines = help_text.splitlines()
    kept, heading_indent = [], None
    for i, line in enumerate(lines):
        depth = len(line) - len(line.lstrip())
        if heading_indent is not None and line.strip() and depth <= heading_indent:
            heading_indent = None
        if heading_indent is not None and line.strip():
            kept.append(" ".join(line.split()))
        elif heading_indent is None and VERBATIM_HEADING.match(line.strip()):
            following = next((l for l in lines[i + 1:] if l.strip()), "")
            if len(following) - len(following.lstrip()) > depth:
                heading_indent = depth
    return kept


def man_problems(help_text, man_text):
    """What a rendered man page (``man -l`` output) lost of a --help text: an option
    that is not an entry of its own, a verbatim line that was reflowed."""
    shown = {" ".join(line.translate(TYPOGRAPHY).split()) for line in man_text.splitlines()}
    problems = [f"option {o!r} is not an entry of its own" for o in option_entries(help_text)
                if o not in shown and not any(s.startswith(o + " ") for s in shown if len(o) < 7)]
    problems += [f"line {v!r} was not kept as it is" for v in verbatim_lines(help_text)
                 if v not in shown]
    return problems


def man_page_of(words):
    """The page documenting a command line: its executable's, except the checks'
    ``kachecks check NAME``, which is ``kachecks-NAME(1)``."""
    if len(words) == 3 and words[:2] == ["kachecks", "check"]:
        return f"kachecks-{words[2]}"
    return words[0]


def render_man(page):
    """``man -l PAGE`` as a person reads it on an 80-column terminal: (text, warnings)."""
    import subprocess

    done = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)],
                          capture_output=True, text=True, timeout=60,
                          env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return done.stdout, done.stderr + ("" if done.returncode == 0 else f"exit {done.returncode}")
