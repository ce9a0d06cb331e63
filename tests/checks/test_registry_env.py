"""A check started through ``env --block-signal`` (docs/checks.md) is still a check."""

import pytest

from kachecks.checks import registry
from kachecks.errors import UsageError


def test_a_check_behind_env_block_signal_is_recognised():
    check, args = registry.from_command(
        ["/usr/bin/env", "--block-signal=HUP,INT,TERM", "/usr/bin/kachecks-http",
         "--url", "http://192.168.8.101/service.txt", "--timeout", "3"])
    assert check is registry.load("http")
    assert args == ["--url", "http://192.168.8.101/service.txt", "--timeout", "3"]


@pytest.mark.parametrize("argv", [
    ["/usr/bin/env", "/usr/bin/kachecks-http", "--url", "http://192.168.8.101/"],
    ["/usr/bin/env", "KACHECKS_STATE_DIR=/tmp", "/usr/bin/kachecks-http"],
    ["/usr/bin/env", "--block-signal=TERM", "-i", "/usr/bin/kachecks-http"],
    ["/usr/bin/env", "--block-signal=TERM"],
])
def test_env_doing_anything_else_is_not_a_check_command(argv):
    with pytest.raises(UsageError):
        registry.from_command(argv)
