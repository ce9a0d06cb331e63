"""`python3 -m kachecks` is the `kachecks` command."""

from kachecks.cli import main

raise SystemExit(main())
