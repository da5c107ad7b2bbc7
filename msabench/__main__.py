import sys

from msabench.cli import main

sys.exit(main())
