"""The shipped Prometheus alert rules: promtool accepts them, and each alert has a
`promtool test rules` case where it fires and cases where it must not."""

import re
from pathlib import Path


from harness.peers.prometheus import hastened, promtool

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "packaging/debian/examples/kachecks-alerts.yml"
CASES = HERE / "kachecks-alerts.test.yml"



def alert_names(text):
    return re.findall(r"(?m)^\s*- alert: (\w+)\s*$", text)


def test_promtool_accepts_the_shipped_rules():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_names(RULES.read_text()))} rules found" in proc.stdout


def test_every_case_passes_promtool_test_rules():
    proc = promtool("test", "rules", CASES.name, cwd=HERE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_shipped_alert_has_a_case_where_it_fires_and_one_where_it_does_not():
    cases = CASES.read_text()
    fired, quiet = set(), set()
    # each alert_rule_test entry: "- eval_time: …\n  alertname: NAME\n  exp_alerts: []" or a list
    for name, expected in re.findall(r"alertname: (\w+)\n\s*exp_alerts:( \[\]|\n)", cases):
        (quiet if expected == " []" else fired).add(name)
    names = set(alert_names(RULES.read_text()))
    assert len(names) == 10
    assert names - fired == set() and names - quiet == set()


def test_the_cases_would_catch_a_rule_that_never_fires(tmp_path):
    broken = tmp_path / "packaging/debian/examples"
    broken.mkdir(parents=True)
    (broken / RULES.name).write_text(
        RULES.read_text().replace("kachecks_check_up == 0", "kachecks_check_up == 2"))
    (tmp_path / "tests/monitoring").mkdir(parents=True)
    (tmp_path / "tests/monitoring" / CASES.name).write_text(CASES.read_text())
    proc = promtool("test", "rules", CASES.name, cwd=tmp_path / "tests/monitoring")
    assert proc.returncode != 0 and "KachecksCheckDown" in proc.stdout + proc.stderr


def test_hastened_rules_keep_everything_but_the_wait():
    text = RULES.read_text()
    fast = hastened(text, "2s")
    assert alert_names(fast) == alert_names(text)
    assert re.findall(r"(?m)^\s*for: (\S+)$", fast) == ["2s"] * len(
        re.findall(r"(?m)^\s*for: ", text))
    assert re.sub(r"(?m)^(\s*for:).*$", r"\1", fast) == re.sub(r"(?m)^(\s*for:).*$", r"\1", text)
