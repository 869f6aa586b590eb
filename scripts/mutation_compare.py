"""Compare two sessions' verdicts mutant by mutant: test selection must never let a mutant live that the
whole selection kills.

    python scripts/mutation_compare.py WHOLE.sqlite SELECTED.sqlite
Exits 1 if a mutant killed in WHOLE survived in SELECTED (each such mutant is listed).
"""
import sys

from cosmic_ray.work_db import use_db

from mutation_sample import key


def verdicts(session: str) -> dict:
    with use_db(session) as db:
        items = {item.job_id: key(item) for item in db.work_items}
        return {items[job_id]: result.test_outcome for job_id, result in db.results
                if result.test_outcome is not None}


def main() -> None:
    whole, selected = verdicts(sys.argv[1]), verdicts(sys.argv[2])
    both = sorted(set(whole) & set(selected))
    agree = sum(whole[k] == selected[k] for k in both)
    lost = [k for k in both if str(whole[k]).endswith("KILLED") and not str(selected[k]).endswith("KILLED")]
    gained = [k for k in both if str(selected[k]).endswith("KILLED") and not str(whole[k]).endswith("KILLED")]
    print(f"{len(both)} mutants in both: {agree} same verdict, {len(lost)} killed only by the whole selection, "
          f"{len(gained)} killed only with test selection")
    for k in lost + gained:
        print("  ", "lost" if k in lost else "gained", k, whole[k], selected[k])
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
