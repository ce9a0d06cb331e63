"""The doctor's reader is bounded: configurations built to explode (definitions that double,
escapes, brace globs, huge, deep or countless includes) end in a finding at their line, in
bounded time and memory, never in a traceback (docs/doctor.md, "Bounds").

Each bomb runs in its own process under resource limits (1 GiB of address space, 10 s of
CPU): a reader that lost a bound is killed by them and the test fails, rather than eat the
machine.
"""

import os
from pathlib import Path

import pytest

from kachecks import keepalivedconf as reader
from kachecks.doctor import configtest
from kachecks.keepalivedconf import MAX_DEPTH, MAX_FILE_BYTES, MAX_LINE, decomment

BOUNDS = ("MAX_LINE", "MAX_SUBSTITUTIONS", "MAX_SUBSTITUTIONS_IN_ALL", "MAX_LINES",
          "MAX_FILE_BYTES", "MAX_FILES", "MAX_DEPTH", "MAX_ALTERNATIVES", "MAX_GLOB_ENTRIES")
LIMITS = ["prlimit", f"--as={1 << 30}", "--cpu=10", "--"]
KEEPALIVED = "/usr/sbin/keepalived"


def doctor_limited(doctor, path, *args, keepalived=False):
    run = doctor("--no-run", "-f", path, *args, keepalived=keepalived, prefix=LIMITS, timeout=60)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run
    assert run.code == 1, run
    return run


def found(run, code, line=None, file=None):
    """The messages of ``code`` findings (at ``line`` of ``file`` when given)."""
    return [f["message"] for f in run.findings if f["code"] == code
            and (line is None or f["line"] == line) and (file is None or f["file"] == str(file))]


def doubling(write, refs=1, braces=True):
    """$A1 = $A0 twice, … $A39 = 2**39 copies of $A0, then ``refs`` lines using $A39."""
    ref = "${{A{}}}" if braces else "$A{}"
    lines = ["$A0=" + "x" * 36] + [f"$A{i}={ref.format(i - 1)}{'' if braces else ' '}"
                                   f"{ref.format(i - 1)}" for i in range(1, 40)]
    text = "\n".join(lines) + "\nglobal_defs {\n" + "".join(
        f"    router_id {ref.format(39)}\n" for _ in range(refs)) + "}\n"
    return write("keepalived.conf", text), len(lines) + 2


def test_definitions_that_double_stop_at_keepalived_s_line_length(doctor, write):
    """1.6 KB of definitions: 14 s of CPU before the bound, now a finding at once."""
    path, first = doubling(write, refs=40)
    run = doctor_limited(doctor, path)
    assert len(run.findings) == 40, run
    [message] = found(run, "syntax", first)
    assert f"longer than keepalived's {MAX_LINE}-byte buffer" in message
    assert message.endswith("the doctor reads the line unexpanded")


def test_thousands_of_lines_of_doubling_definitions_stay_bounded(doctor, write):
    """The 115 KB variant (19 s and 1 GB before): each line stops at the line bound, and
    the substitutions in all end the reading."""
    path, first = doubling(write, refs=6000, braces=False)
    run = doctor_limited(doctor, path)
    lines = {f["line"] for f in run.findings if f["code"] == "syntax"}
    assert min(lines) == first and len(lines) == len(found(run, "syntax")), run
    [(line, message)] = [(f["line"], f["message"]) for f in run.findings if f["code"] == "limit"]
    assert line == max(lines) + 1 < first + 6000
    assert message == "more than 250,000 $NAME substitutions in all: the doctor reads no further"


def test_a_definition_doubling_short_values_is_said_to_expand_forever(write):
    """Values too short to reach the line bound meet the bound of substitutions per line."""
    path = write("keepalived.conf", "$A0=x\n" + "".join(f"$A{i}=$A{i - 1} $A{i - 1}\n"
                                                         for i in range(1, 40))
                 + "global_defs {\n    router_id $A39\n}\n")
    config = reader.read(str(path), "lvs1")
    [finding] = config.findings
    assert finding.line == 42 and "expand forever" in finding.message
    assert config.exceeded


def test_definitions_that_double_skip_keepalived_t_which_would_not_finish(doctor, write):
    """keepalived 2.2.7 -t itself loops on this file, printing gigabytes: it is not run."""
    if not os.access(KEEPALIVED, os.X_OK):
        pytest.fail(f"{KEEPALIVED} is needed (.ci/apt.d/base.txt)")
    path, first = doubling(write)
    run = doctor_limited(doctor, path, keepalived=True)
    assert found(run, "syntax", first)
    [skipped] = [f for f in run.findings if f["line"] is None]
    assert skipped["severity"] == "warning" and "keepalived's own check was not run" in \
        skipped["message"], run


def test_keepalived_t_output_is_read_up_to_a_bound(tmp_path):
    """A keepalived -t that never stops talking is stopped, its words not kept."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text("global_defs {\n}\n")
    talker = tmp_path / "keepalived"
    talker.write_text("#!/bin/sh\nexec yes \"(Line 1) Unknown keyword 'x'\"\n")
    talker.chmod(0o755)
    outcome = configtest.run(str(talker), str(conf), timeout=30)
    assert outcome.failure == "keepalived -t wrote more than 1 MiB of messages", outcome.failure
    assert outcome.lines == []


def test_escapes_cost_linear_time(doctor, write):
    """A 2 MB line of \\# (quadratic before: minutes) is cut where keepalived cuts it."""
    path = write("keepalived.conf", "global_defs {\n    router_id " + "\\#" * 1_000_000 + "\n}\n")
    run = doctor_limited(doctor, path)
    assert any(f"longer than keepalived's {MAX_LINE}-byte buffer" in m
               for m in found(run, "syntax", 2)), run


@pytest.mark.parametrize("line,text", [
    ("router_id lvs1 \\# " * 60, ("router_id lvs1 # " * 60).rstrip()),
    ('router_id "lvs1 \\# x" # "a comment', 'router_id "lvs1 \\# x"'),
    ("router_id lvs1 # a comment ending in \\", "router_id lvs1\\"),  # 2.2.7 and 2.3.3 go on
])
def test_escapes_and_comments_as_keepalived_reads_them(line, text):
    assert decomment(line) == (text, False)


def test_a_line_longer_than_keepalived_s_buffer_is_read_in_its_pieces(write):
    """keepalived 2.2.7 and 2.3.3 read the rest of a long line as a line of its own."""
    path = write("keepalived.conf", "global_defs {\n    router_id " + "x" * 1100
                 + " notify_fifo\n}\n")
    config = reader.read(str(path), "lvs1")
    block = config.nodes[0].block
    assert [(n.keyword, n.line) for n in block] == [("router_id", 2), ("x" * 91, 2)]
    assert len("    " + block[0].raw) == MAX_LINE  # the first piece, blanks included
    [message] = [f.message for f in config.findings]
    assert f"longer than keepalived's {MAX_LINE}-byte buffer" in message


def test_a_brace_glob_stops_at_its_pattern_bound(doctor, write):
    """{a,b} 24 times over is 16 million patterns (memory and minutes before)."""
    path = write("keepalived.conf", "global_defs {\n}\ninclude " + "{a,b}" * 24 + ".conf\n")
    run = doctor_limited(doctor, path)
    [message] = found(run, "limit", 3)
    assert "its braces make more than 256 patterns: not read" in message


def test_an_included_file_larger_than_the_bound_is_not_read(doctor, write, tmp_path):
    """A 2 GiB sparse include: read whole before (MemoryError), now not read at all."""
    path = write("keepalived.conf", "global_defs {\n}\ninclude big.conf\n")
    with open(tmp_path / "big.conf", "wb") as big:
        big.truncate(2 << 30)
    run = doctor_limited(doctor, path)
    [message] = found(run, "limit", 3, path)
    assert message == (f"{tmp_path / 'big.conf'} is 2048.0 MiB: more than the doctor reads in one"
                       f" file ({MAX_FILE_BYTES >> 20}.0 MiB); not audited")


def test_a_main_file_larger_than_the_bound_is_not_read(doctor, tmp_path):
    path = tmp_path / "keepalived.conf"
    with open(path, "wb") as big:
        big.truncate(MAX_FILE_BYTES + 1)
    run = doctor_limited(doctor, path)
    assert [(f["line"], f["code"]) for f in run.findings] == [(None, "limit")], run


def test_includes_nested_past_the_bound_are_not_read(doctor, tmp_path):
    """1,200 nested includes: RecursionError before."""
    for k in range(1200):
        (tmp_path / f"c{k}.conf").write_text(f"include c{k + 1}.conf\n" if k < 1199
                                             else "global_defs {\n}\n")
    run = doctor_limited(doctor, tmp_path / "c0.conf")
    [message] = found(run, "limit", 1, tmp_path / f"c{MAX_DEPTH - 1}.conf")
    assert message == f"{tmp_path / f'c{MAX_DEPTH}.conf'}: includes nested more than 32 deep: not read"


def test_an_include_tree_stops_at_the_file_bound(doctor, tmp_path):
    """Each file includes the next ten times: 10 million files to read (hours before)."""
    for k in range(8):
        (tmp_path / f"t{k}.conf").write_text(f"include t{k + 1}.conf\n" * 10 if k < 7
                                             else "global_defs {\n}\n")
    run = doctor_limited(doctor, tmp_path / "t0.conf")
    [message] = found(run, "limit")
    assert message.endswith("more than 10,000 files in all: the doctor reads no further"), run
    assert "10000 files read" in run.stderr


def test_multiline_definitions_that_double_stop_at_the_substitution_bound(doctor, write):
    """$M29 makes 2**29 lines: the total of substitutions ends the reading."""
    lines = ["$M0=router_id lvs1"]
    for i in range(1, 30):
        lines += [f"$M{i}=$M{i - 1}\\", f"$M{i - 1}", ""]
    path = write("keepalived.conf", "\n".join(lines) + "\nglobal_defs {\n$M29\n}\n")
    run = doctor_limited(doctor, path)
    [message] = found(run, "limit", len(lines) + 2)
    assert message == "more than 250,000 $NAME substitutions in all: the doctor reads no further"
    assert not found(run, "syntax"), run  # the cut block is not called unclosed


def test_wildcards_stop_after_the_directory_entry_bound(write, tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_GLOB_ENTRIES", 50)
    for k in range(60):
        write(f"conf.d/{k:02}.conf", "")
    path = write("keepalived.conf", "include conf.d/*.conf\ninclude conf.d/0*.conf\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.code) for f in config.findings] == [(1, "limit"), (2, "limit")]
    assert "looked at more than 50 directory entries in all" in config.findings[0].message
    assert config.exceeded


def test_wildcards_match_as_before(write, tmp_path):
    write("etc/conf.d/b.conf", "")
    write("etc/conf.d/a.conf", "")
    write("etc/conf.d/.hidden.conf", "")
    write("etc/conf.d/sub/c.conf", "")
    path = write("etc/keepalived.conf", "include conf.d/*.conf\ninclude conf.d/[s]*/?.conf\n"
                                        f"include {tmp_path}/etc/conf.d/*/*.conf\n")
    config = reader.read(str(path), "lvs1")
    etc = tmp_path / "etc" / "conf.d"
    assert config.files == [str(path), str(etc / "a.conf"), str(etc / "b.conf"),
                            str(etc / "sub/c.conf"), str(etc / "sub/c.conf")]
    assert config.findings == [] and not config.exceeded


def test_the_line_bound_ends_the_reading_with_one_finding(write, monkeypatch):
    monkeypatch.setattr(reader, "MAX_LINES", 10)
    path = write("keepalived.conf", "vrrp_instance VI_1 {\n" + "    priority 100\n" * 20 + "}\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.code) for f in config.findings] == [(11, "limit")]
    assert len(config.nodes[0].block) == 9


@pytest.mark.parametrize("page,heading", [("doctor.md", "## Bounds"),
                                          ("reference.md", "### The doctor's bounds")])
def test_every_bound_is_named_in_the_docs(page, heading):
    text = (Path(__file__).resolve().parents[2] / "docs" / page).read_text(encoding="utf-8")
    section = text.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    for name in BOUNDS:
        value = getattr(reader, name)
        shown = f"{value >> 20} MiB" if name == "MAX_FILE_BYTES" else f"{value:,}"
        assert shown in section, (page, name, shown)
