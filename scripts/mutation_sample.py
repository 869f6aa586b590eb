"""Keep a random sample of a session's mutants, the same one for every session of the same files: the
rest are skipped (not counted). For comparing two ways of running the tests on a few hundred mutants
(scripts/mutation_compare.py) without running thousands.

    python scripts/mutation_sample.py SESSION.sqlite COUNT SEED
"""
import random
import sys

from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def key(item) -> tuple:
    """A mutant's identity across sessions (job ids are random per session)."""
    return tuple((str(m.module_path), m.operator_name, m.occurrence) for m in item.mutations)


def main() -> None:
    session, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with use_db(session) as db:
        done = {job_id for job_id, _ in db.results}
        candidates = sorted((item for item in db.work_items if item.job_id not in done), key=key)
        kept = {item.job_id for item in random.Random(seed).sample(candidates, min(count, len(candidates)))}
        for item in candidates:
            if item.job_id not in kept:
                db.set_result(item.job_id, WorkResult(output=None, test_outcome=None, diff=None,
                                                      worker_outcome=WorkerOutcome.SKIPPED))
    print(f"   sample: {len(kept)} of {len(candidates)} mutants (seed {seed})")


if __name__ == "__main__":
    main()
