"""A verify worker process: `python -m audit.scan_worker`, one seq range of the chain.

`audit verify` starts these instead of multiprocessing's spawn children, which re-import the
parent's main module (the whole CLI: about a second of CPU per worker, ~2 µs per event of a
million-event trail). This one imports only audit.scan and psycopg2. The range to check arrives
pickled on stdin (never on the command line, where the database URL's password would show in
`ps`); the RangeResult goes back pickled on stdout. Both ends are this program's own code.
"""

from __future__ import annotations

import pickle
import sys

from audit.scan import scan_range_in_snapshot


def main() -> None:
    dsn, snapshot, lo, hi, first, expected = pickle.load(sys.stdin.buffer)  # noqa: S301  (from the parent verify)
    result = scan_range_in_snapshot(dsn, snapshot, lo, hi, first, expected)
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
