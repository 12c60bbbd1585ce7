"""`python -m inferline.stores.hnsw_build DIRECTORY TENANT BUCKET DIMS EF THREADS BLOCKING`: fold a bucket's
changes into its HNSW graph file (`LocalVectorIndex.compact`), at low CPU priority. Started by the searching
process; the database URL comes in the environment (never on the command line)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from inferline.stores.db import Database
from inferline.stores.vectors import BUILD_DATABASE_ENV, LocalVectorIndex


def main(argv: list[str]) -> None:
    directory, tenant_id, bucket, dims, ef_search, threads, blocking = argv
    os.nice(10)  # requests first
    db = Database(os.environ[BUILD_DATABASE_ENV])
    try:
        index = LocalVectorIndex(
            db, Path(directory), ef_search=int(ef_search), build_threads=int(threads), follow_seconds=0
        )
        index.compact(tenant_id, bucket, int(dims), blocking=blocking == "1")
    finally:
        db.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
