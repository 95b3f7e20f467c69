import sys

from capplan.cli import main

sys.exit(main())
