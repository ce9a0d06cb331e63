"""``kachecks agent``: the checks without a fork, feeding keepalived's track files."""
