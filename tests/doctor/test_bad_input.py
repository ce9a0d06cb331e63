"""What cannot be read as a configuration: one clear line on stderr, exit 1, no traceback."""

import os

import pytest

from harness.peers.keepalived import secure_dir


def assert_one_line(run, *needles):
    assert run.code == 1, run
    assert run.stdout == "", run
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kachecks doctor: "), run
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[0], run


def test_a_missing_file(doctor, tmp_path):
    run = doctor("--no-run", "-f", tmp_path / "keepalived.conf", as_json=False)
    assert_one_line(run, "keepalived.conf: cannot read the configuration: No such file or directory")


def test_the_default_file_is_keepalived_s(doctor, tmp_path):
    run = doctor("--no-run", cwd=tmp_path, as_json=False)
    assert run.code in (0, 1) and "Traceback" not in run.stderr
    if not os.path.exists("/etc/keepalived/keepalived.conf"):
        assert_one_line(run, "/etc/keepalived/keepalived.conf: cannot read")


def test_a_directory(doctor, tmp_path):
    run = doctor("--no-run", "-f", tmp_path, as_json=False)
    assert_one_line(run, f"{tmp_path}: is a directory")


def test_an_unreadable_file(doctor, tmp_path, write, other_user):
    secure_dir(tmp_path)  # let another user reach the file, not read it
    path = write("keepalived.conf", "global_defs {\n}\n", mode=0o600)
    run = doctor("--no-run", "-f", path, as_json=False,
                 prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert_one_line(run, f"{path}: cannot read the configuration: Permission denied")


def test_binary_garbage(doctor, tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_bytes(b"global_defs {\n}\n" + bytes(range(256)) * 40)
    run = doctor("--no-run", "-f", path, as_json=False)
    assert_one_line(run, f"{path}:3: binary data (byte 0x00): not a keepalived configuration file")


def test_binary_garbage_in_an_included_file_names_both_places(doctor, write):
    main = write("keepalived.conf", "global_defs {\n}\ninclude conf.d/*.conf\n")
    blob = main.parent / "conf.d" / "x.conf"
    blob.parent.mkdir()
    blob.write_bytes(os.urandom(4096).replace(b"\n", b"") + b"\x00")
    run = doctor("--no-run", "-f", main, as_json=True)
    assert_one_line(run, f"{blob}:1: binary data", f"(included at {main}:3)")


@pytest.mark.parametrize("files,loop", [
    ({"keepalived.conf": "include keepalived.conf\n"}, "keepalived.conf -> keepalived.conf"),
    ({"keepalived.conf": "global_defs {\n}\ninclude conf.d/*.conf\n",
      "conf.d/a.conf": "\ninclude ../keepalived.conf\n"}, "keepalived.conf -> a.conf -> keepalived.conf"),
])
def test_an_include_loop(doctor, tmp_path, write, files, loop):
    for name, text in files.items():
        write(name, text)
    run = doctor("--no-run", "-f", tmp_path / "keepalived.conf", as_json=False)
    assert_one_line(run, f"include loop: {loop}")


def test_a_usage_mistake_is_one_line_and_exit_1(doctor):
    run = doctor("--no-such-option", as_json=False)
    assert_one_line(run, "No such option", "--help")


def test_a_100k_line_configuration_is_read_whole(doctor, tmp_path):
    """Interactive even for a generated configuration (timed in docs/doctor.md, not here)."""
    lines = ["global_defs {", "    router_id lvs1", "}"]
    n = 0
    while len(lines) < 100_000:
        n += 1
        lines += [f"virtual_server 10.{n // 250 % 250}.{n % 250}.1 80 {{", "    delay_loop 4",
                  "    lb_algo wlc", "    lb_kind DR", "    protocol TCP",
                  f"    real_server 10.{n // 250 % 250}.{n % 250}.2 80 {{", "        weight 1",
                  "        TCP_CHECK {", "            connect_timeout 2", "        }", "    }", "}"]
    lines.append("Nopreempt")
    path = tmp_path / "keepalived.conf"
    path.write_text("\n".join(lines) + "\n")
    run = doctor("--no-run", "-f", path)
    assert run.where() == {(str(path), len(lines), "error", "syntax")}, run
