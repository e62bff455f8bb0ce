"""A sync child process (``python -m lib.sync.child``), started by ``lib.sync.processes.Pool``.

Its own module, which the ``lib.sync`` package does not import, so running it loads
``lib.sync.processes`` once, under its own name.
"""

import json
import sys
from multiprocessing.connection import Connection

from lib.sync.processes import child_main

if __name__ == "__main__":  # its socket, the cash list, the request timeout
    child_main(Connection(int(sys.argv[1])), frozenset(json.loads(sys.argv[2])), int(sys.argv[3]))
