"""`python -m symlstm.backend.onednn` (what `make onednn` runs): compile the fused LSTM; what is
missing for it (oneDNN's headers, a C++ compiler) is one line on stderr and exit status 1."""
import sys

from symlstm.backend.onednn import build
from symlstm.errors import UserError

try:
    build()
except UserError as err:
    sys.exit(str(err))
