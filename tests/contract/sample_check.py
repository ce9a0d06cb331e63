"""A check whose probe does what the test asks, to pin the contract itself."""

import sys
import time

from kachecks.argspec import Opt
from kachecks.checks.contract import Check, run
from kachecks.checks.result import Result
from kachecks.errors import ProbeFailure, UsageError


def probe(ns, deadline):
    behave = ns.behave
    if ns.behave_file:  # same argv, changing behaviour: one check identity across runs
        with open(ns.behave_file) as handle:
            behave = handle.read().strip()
    if behave == "ok":
        return Result(True, summary="all good", perfdata=(("time", 0.25, "s"),),
                      details=("detail line",))
    if behave == "weight":
        return Result(True, summary="weighted", weight=ns.found_weight)
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
    probe=probe, target=lambda ns: "[192.0.2.1]:80",
)

if __name__ == "__main__":
    sys.exit(run(CHECK))
