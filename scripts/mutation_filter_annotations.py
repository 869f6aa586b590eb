"""Skip the mutants that fall inside a type annotation of a module with `from __future__ import annotations`.

There annotations are strings that nothing evaluates (`rows: np.ndarray | None` made `np.ndarray + None`
changes no behaviour), so such a mutant can only survive and no test could kill it: it is not counted.

    python scripts/mutation_filter_annotations.py SESSION.sqlite
"""
import ast
import sys
from functools import lru_cache
from pathlib import Path

from cosmic_ray.tools.filters.filter_app import FilterApp
from cosmic_ray.work_item import WorkerOutcome, WorkResult


@lru_cache
def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) as (line, column) of every annotation, or none if the module evaluates them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    if not postponed:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            annotation = node.annotation
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotation = node.returns
        elif isinstance(node, ast.AnnAssign):
            annotation = node.annotation
        else:
            continue
        if annotation is not None:
            found.append(((annotation.lineno, annotation.col_offset),
                          (annotation.end_lineno, annotation.end_col_offset)))
    return found


class AnnotationFilter(FilterApp):
    def description(self):
        return __doc__

    def filter(self, work_db, _args):
        for item in work_db.work_items:
            if all(any(start <= tuple(m.start_pos) and tuple(m.end_pos) <= end
                       for start, end in annotation_spans(Path(m.module_path)))
                   for m in item.mutations):
                work_db.set_result(item.job_id, WorkResult(output=None, test_outcome=None, diff=None,
                                                           worker_outcome=WorkerOutcome.SKIPPED))


if __name__ == "__main__":
    sys.exit(AnnotationFilter().main())
