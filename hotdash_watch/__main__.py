import sys

from hotdash_watch.cli import main

sys.exit(main())
