"""Keep part of a session's mutants, the same part for every session of the same files; the rest are
skipped (not counted):
- a random sample, for comparing two ways of running the tests on a few hundred mutants
  (scripts/mutation_compare.py) without running thousands;
- one shard of N (every Nth mutant in a fixed order), so that one large module runs on several lanes,
  each shard a session of its own, and their counts add up to the module's.

    python scripts/mutation_sample.py SESSION.sqlite COUNT SEED
    python scripts/mutation_sample.py SESSION.sqlite --shard K N
"""
import random
import sys

from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def key(item) -> tuple:
    """A mutant's identity across sessions (job ids are random per session)."""
    return tuple((str(m.module_path), m.operator_name, m.occurrence) for m in item.mutations)


def skip(db, items) -> None:
    """Mark these mutants skipped: cosmic-ray does not run them, and the scores do not count them."""
    for item in items:
        db.set_result(item.job_id, WorkResult(output=None, test_outcome=None, diff=None,
                                              worker_outcome=WorkerOutcome.SKIPPED))


def shard(session: str, k: int, n: int) -> None:
    """Skip every mutant but the k-th of each n (1-based), counted over all of the session's mutants in
    `key` order, so a resumed session keeps the same shard."""
    with use_db(session) as db:
        done = {job_id for job_id, _ in db.results}
        ordered = sorted(db.work_items, key=key)
        skip(db, [item for index, item in enumerate(ordered) if index % n != k - 1 and item.job_id not in done])
    print(f"   shard {k} of {n}: {len(ordered[k - 1::n])} of {len(ordered)} mutants")


def main() -> None:
    if sys.argv[2] == "--shard":
        shard(sys.argv[1], int(sys.argv[3]), int(sys.argv[4]))
        return
    session, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with use_db(session) as db:
        done = {job_id for job_id, _ in db.results}
        candidates = sorted((item for item in db.work_items if item.job_id not in done), key=key)
        kept = {item.job_id for item in random.Random(seed).sample(candidates, min(count, len(candidates)))}
        skip(db, [item for item in candidates if item.job_id not in kept])
    print(f"   sample: {len(kept)} of {len(candidates)} mutants (seed {seed})")


if __name__ == "__main__":
    main()
