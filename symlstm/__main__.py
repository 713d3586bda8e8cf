import sys

from symlstm.app.cli import main

sys.exit(main())
