import sys

from harness.lab.scenario import main

sys.exit(main())
