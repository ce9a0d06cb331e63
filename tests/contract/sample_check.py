"""A check whose probe does what the test asks, to pin the contract itself."""

import sys
import time

from kachecks.argspec import Opt
from kachecks.checks.contract import Check, run
from kachecks.checks.options import Target, common
from kachecks.checks.result import Result
from kachecks.errors import ProbeFailure, UsageError


class SampleTarget(Target):
    __slots__ = ("behave", "behave_file", "found_weight")


def build(ns):
    return SampleTarget(**common(ns), host="192.0.2.1", port=80, behave=ns.behave,
                        behave_file=ns.behave_file, found_weight=ns.found_weight)


def probe(target, deadline):
    behave = target.behave
    if target.behave_file:  # same argv, changing behaviour: one check identity across runs
        with open(target.behave_file) as handle:
            behave = handle.read().strip()
    if behave == "ok":
        return Result(True, summary="all good", perfdata=(("time", 0.25, "s"),),
                      details=("detail line",))
    if behave == "weight":
        return Result(True, summary="weighted", weight=target.found_weight)
    if behave == "warn":
        return Result(True, summary="fine", warning="certificate expires in 3 days")
    if behave == "fail":
        raise ProbeFailure("md5 mismatch (got aa, want bb)", "digest")
    if behave == "usage":
        raise UsageError("bad combination")
    if behave == "crash":
        raise RuntimeError("boom")
    if behave == "hang":  # honours the deadline like a socket would
        while True:
            time.sleep(min(0.05, deadline.remaining("read")))
    if behave == "stuck":  # ignores the deadline entirely
        time.sleep(30)
    raise SystemExit(f"unknown behaviour {behave}")


CHECK = Check(
    name="SAMPLE", prog="kachecks-sample",
    opts=[Opt("behave", None, "behave", default="ok", help="what the probe does"),
          Opt("behave_file", None, "behave-file", help="read the behaviour from this file"),
          Opt("found_weight", None, "found-weight", default=None, convert=int, help="weight")],
    usage="[OPTIONS]", description="test check", epilog="",
    build=build, probe=probe,
)

if __name__ == "__main__":
    sys.exit(run(CHECK))
