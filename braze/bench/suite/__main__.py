import sys

from braze.bench.suite import main

sys.exit(main())
