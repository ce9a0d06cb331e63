"""keepalived.conf read the way keepalived's parser reads it (comments, quotes, braces,
includes, definitions, @ lines), node by node, with each node's file and line."""

import os
import socket

import pytest

from kachecks import keepalivedconf as reader
from kachecks.keepalivedconf import ReadError, decomment, expand_braces, pieces, words


def tree(config):
    """[(keyword, args, line, children)] of a Config, for compact assertions."""
    def walk(nodes):
        return [(n.keyword, n.args, n.line, walk(n.block) if n.block is not None else None)
                for n in nodes]
    return walk(config.nodes)


def syntax_messages(config):
    return [(f.file, f.line, f.severity, f.message) for f in config.findings]


@pytest.mark.parametrize("line,text", [
    ("  router_id lvs1   # director name", "router_id lvs1"),
    ("router_id lvs1 ! director name", "router_id lvs1"),
    ('auth_pass "p#ss!word"  # quoted: not a comment', 'auth_pass "p#ss!word"'),
    (r"router_id lvs\#1", "router_id lvs#1"),
    (r"router_id lvs\!1", "router_id lvs!1"),
    ("# only a comment", ""),
    ("\t! only a comment", ""),
])
def test_comments_start_with_hash_or_bang_outside_double_quotes(line, text):
    assert decomment(line) == (text, False)


def test_an_unterminated_quote_is_reported_and_swallows_the_comment():
    assert decomment('router_id "lvs1 # comment') == ('router_id "lvs1 # comment', True)


@pytest.mark.parametrize("line,split", [
    ("real_server 192.168.8.101 80", ["real_server", "192.168.8.101", "80"]),
    ('misc_path "/usr/bin/kachecks-http --url http://192.168.8.101/service.txt"',
     ["misc_path", "/usr/bin/kachecks-http --url http://192.168.8.101/service.txt"]),
    ('notify ""', ["notify", ""]),
    ('a"b c"d', ["a", "b c", "d"]),
    ("router_id\u00a0lvs1", ["router_id\u00a0lvs1"]),  # only C blanks separate words
])
def test_words_split_on_blanks_and_double_quotes_group(line, split):
    assert words(line) == split


@pytest.mark.parametrize("line,split", [
    ("real_server 192.168.8.101 80 {", ["real_server 192.168.8.101 80", "{"]),
    ("url { path /service.txt }", ["url", "{", "path /service.txt", "}"]),
    ("} }", ["}", "}"]),
    ('auth_pass "a{b}c" }', ['auth_pass "a{b}c"', "}"]),
])
def test_a_brace_outside_quotes_ends_a_line(line, split):
    assert pieces(line) == split


def test_glob_braces_expand_in_order_and_nest():
    assert expand_braces("conf.d/{web,ldap{1,2}}.conf") == [
        "conf.d/web.conf", "conf.d/ldap1.conf", "conf.d/ldap2.conf"]
    assert expand_braces(r"a\{b,c}") == [r"a\{b,c}"]


def test_blocks_nest_and_every_node_keeps_its_line(write):
    path = write("keepalived.conf", "global_defs {\n    router_id lvs1\n}\n"
                                    "vrrp_instance VI_1\n{\n  state BACKUP ; x\n"
                                    "  virtual_ipaddress { 192.168.8.142/24 dev eth0 }\n}\n")
    config = reader.read(str(path), "lvs1")
    assert tree(config) == [
        ("global_defs", (), 1, [("router_id", ("lvs1",), 2, None)]),
        ("vrrp_instance", ("VI_1",), 4, [
            ("state", ("BACKUP", ";", "x"), 6, None),
            ("virtual_ipaddress", (), 7, [("192.168.8.142/24", ("dev", "eth0"), 7, None)])]),
    ]
    assert config.findings == []
    assert config.nodes[1].end == (str(path), 8)


def test_includes_are_relative_to_the_including_file_and_keep_their_own_lines(tmp_path, write,
                                                                            monkeypatch):
    write("etc/keepalived.conf", "global_defs {\n}\ninclude conf.d/*.conf\n")
    write("etc/conf.d/b.conf", "\n\nvrrp_script chk {\n  include ../scripts/chk.inc\n}\n")
    write("etc/conf.d/a.conf", "vrrp_instance VI_1 {\n}\n")
    write("etc/scripts/chk.inc", "# the script line\n  script /usr/bin/true\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # keepalived resolves includes from the file, not the cwd
    config = reader.read(str(tmp_path / "etc/keepalived.conf"), "lvs1")
    etc = tmp_path / "etc"
    assert config.files == [str(etc / "keepalived.conf"), str(etc / "conf.d/a.conf"),
                            str(etc / "conf.d/b.conf"), str(etc / "scripts/chk.inc")]
    script = config.nodes[2].block[0]
    assert (script.keyword, script.file, script.line) == ("script", str(etc / "scripts/chk.inc"), 2)
    assert config.nodes[2].line == 3 and config.nodes[2].file == str(etc / "conf.d/b.conf")


def test_a_missing_include_is_an_error_an_empty_wildcard_is_not(write):
    path = write("keepalived.conf", "include missing.conf\ninclude conf.d/*.conf\n"
                                    "includew none/*.conf\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.severity) for f in config.findings] == [(1, "error"), (3, "error")]
    assert "missing.conf: no such file" in config.findings[0].message


def test_keepalived_skips_included_directories_and_executable_files(write, tmp_path):
    write("keepalived.conf", "include conf.d/*\ninclude sub\n")
    write("conf.d/run.sh", "vrrp_instance VI_1 {\n}\n", mode=0o755)
    write("conf.d/ok.conf", "global_defs {\n}\n")
    (tmp_path / "conf.d/more").mkdir()
    (tmp_path / "sub").mkdir()
    config = reader.read(str(tmp_path / "keepalived.conf"), "lvs1")
    assert [n.keyword for n in config.nodes] == ["global_defs"]
    found = [(f.line, f.severity, f.message.split(":")[0]) for f in config.findings]
    assert found == [(1, "warning", "include"), (1, "error", "include"), (2, "error", "include")]
    assert "more is a directory" in config.findings[0].message
    assert "run.sh: not a regular non-executable file" in config.findings[1].message


def test_definitions_substitute_where_keepalived_substitutes(write):
    path = write("keepalived.conf", (
        "$WEB1=192.168.8.101\n"
        "$PORT=80\n"
        "virtual_server 192.168.8.142 $PORT {\n"
        "  real_server ${WEB1} $PORT {\n"
        "  }\n"
        "  real_server $WEB1:80 {\n"  # $NAME must end at a blank, ',' or ')': not replaced
        "  }\n"
        "}\n"))
    config = reader.read(str(path), "lvs1")
    vs = config.nodes[0]
    assert vs.args == ("192.168.8.142", "80")
    assert [rs.args for rs in vs.block] == [("192.168.8.101", "80"), ("$WEB1:80",)]


def test_a_multiline_definition_expands_to_lines_numbered_where_it_is_used(write):
    path = write("keepalived.conf", (
        "$CHECK=TCP_CHECK { \\\n"
        "    # comments inside are skipped \\\n"
        "    connect_timeout 2 \\\n"
        "}\n"
        "virtual_server 192.168.8.142 80 {\n"
        "  real_server 192.168.8.101 80 {\n"
        "    $CHECK\n"
        "  }\n"
        "}\n"))
    config = reader.read(str(path), "lvs1")
    check = config.nodes[0].block[0].block[0]
    assert (check.keyword, check.line) == ("TCP_CHECK", 7)
    assert [(n.keyword, n.args, n.line) for n in check.block] == [("connect_timeout", ("2",), 7)]


def test_builtin_definitions(write, tmp_path):
    path = write("keepalived.conf", "global_defs {\n  router_id $_INSTANCE\n"
                                    "  notify_fifo ${_PWD}/fifo\n  smtp_helo_name a${_HASH}b\n}\n")
    config = reader.read(str(path), "lvs2")
    block = config.nodes[0].block
    assert [n.args for n in block] == [("lvs2",), (f"{tmp_path}/fifo",), ("a",)]  # '#' starts a comment


def test_a_definition_that_refers_to_itself_is_reported_not_looped(write):
    path = write("keepalived.conf", "$A=x $A\nglobal_defs {\n  router_id $A\n}\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.severity) for f in config.findings] == [(3, "error")]
    assert "expand forever" in config.findings[0].message


@pytest.mark.parametrize("config_id,kept", [("lvs1", ["router_id lvs1", "priority 150"]),
                                            ("lvs2", ["router_id lvs2", "priority 150"]),
                                            ("lvs3", ["priority 150"])])
def test_at_lines_apply_to_their_director_and_at_caret_lines_to_the_others(write, config_id, kept):
    path = write("keepalived.conf", "global_defs {\n@lvs1 router_id lvs1\n@lvs2 router_id lvs2\n"
                                    "@^lvs1 priority 150\n@lvs1\n}\n")
    config = reader.read(str(path), config_id)
    got = [" ".join((n.keyword, *n.args)) for n in config.nodes[0].block]
    if config_id == "lvs1":
        kept = ["router_id lvs1"]
    assert got == kept


def test_the_config_id_defaults_to_the_host_name_up_to_its_first_dot(write):
    host = socket.gethostname().split(".")[0]
    path = write("keepalived.conf", f"global_defs {{\n@{host} router_id here\n@^{host} router_id elsewhere\n}}\n")
    config = reader.read(str(path))
    assert config.config_id == os.uname().nodename.split(".")[0]
    assert [n.args for n in config.nodes[0].block] == [("here",)]


def test_seq_and_lst_lines_are_said_to_be_left_unaudited(write):
    path = write("keepalived.conf", "virtual_server 192.168.8.142 80 {\n"
                                    "  ~SEQ(n, 1, 3) real_server 192.168.8.10$n 80\n}\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.severity) for f in config.findings] == [(2, "warning")]
    assert "~SEQ" in config.findings[0].message


def test_brace_mistakes_are_reported_where_they_are(write):
    path = write("keepalived.conf", "global_defs {\n  router_id lvs1\n}\n}\n{\n}\n"
                                    "vrrp_instance VI_1 {\n  state BACKUP\n")
    config = reader.read(str(path), "lvs1")
    assert [(f.line, f.message.split(" (")[0].split(":")[0]) for f in config.findings] == [
        (4, "extra '}'"), (5, "unexpected '{'"), (7, "missing '}'")]


def test_windows_line_ends_and_latin1_comments_are_read(write, tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_bytes(b"# r\xe9seau\r\nglobal_defs {\r\n  router_id lvs1\r\n}\r\n")
    config = reader.read(str(path), "lvs1")
    assert tree(config) == [("global_defs", (), 2, [("router_id", ("lvs1",), 3, None)])]


@pytest.mark.parametrize("text,problem", [
    ("include self.conf\n", "include loop: self.conf -> self.conf"),
    ("global_defs {\n}\n\x00\x01binary", "binary data (byte 0x00)"),
])
def test_unreadable_input_raises_one_read_error(tmp_path, text, problem):
    path = tmp_path / "self.conf"
    path.write_text(text)
    with pytest.raises(ReadError) as caught:
        reader.read(str(path), "lvs1")
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_include_swapped_for_a_fifo_after_its_stat_does_not_hang_the_reader(
        tmp_path, monkeypatch, in_thread):
    # keepalived's rule (a regular non-executable file) is judged on the include's stat;
    # whoever can write there swaps in a FIFO before it is opened.
    conf = tmp_path / "keepalived.conf"
    included = tmp_path / "vs.conf"
    conf.write_text(f"global_defs {{\n    router_id lvs1\n}}\ninclude {included}\n")
    included.write_text("vrrp_instance VI_1 {\n}\n")
    real_stat = os.stat
    swapped = []

    def stat_then_swap(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if os.fspath(path) == str(included) and not swapped:
            swapped.append(path)
            os.unlink(included)
            os.mkfifo(included, 0o644)
        return result

    monkeypatch.setattr(reader.os, "stat", stat_then_swap)
    try:
        config, _took = in_thread(lambda: reader.read(str(conf)), within=10)
    finally:
        monkeypatch.undo()
        try:
            os.close(os.open(included, os.O_WRONLY | os.O_NONBLOCK))  # a stuck reader: EOF
        except OSError:
            pass
    assert swapped
    assert [(f.line, f.message) for f in config.findings] == [
        (4, f"cannot read included file {included}: not a regular file (a FIFO)"
            " (keepalived skips it)")]
