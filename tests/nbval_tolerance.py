"""pytest plugin (``-p nbval_tolerance``, with ``tests/`` on ``PYTHONPATH``): nbval under the
book's reproducibility contract.

nbval compares every output exactly. Cells tagged ``trained-numbers`` print numbers from trained
models, which differ across CPUs in their last digits; for those cells the text and every integer
must still match exactly, and each float must lie within the cell's tolerance
(:mod:`apalu.report.reproduce`). Every other cell is compared by nbval exactly as before.
"""

from __future__ import annotations

from collections import defaultdict

from nbval.plugin import IPyNbCell, transform_streams_for_comparison

from apalu.report.reproduce import cell_tolerance, compare_text


class ToleranceCell(IPyNbCell):
    def _flatten(self, outputs, skip) -> dict[str, list]:
        flat: dict[str, list] = defaultdict(list)
        for out in transform_streams_for_comparison(outputs):
            for key, value in out.items():
                if key in skip:
                    continue
                if key == "data":
                    for mime, data in value.items():
                        if mime not in skip:
                            flat[mime].append(self.sanitize(data))
                else:
                    flat[key].append(self.sanitize(value))
        return flat

    def compare_outputs(self, test, ref, skip_compare=None):
        tolerance = cell_tolerance(self.cell.metadata)
        if tolerance is None:
            return super().compare_outputs(test, ref, skip_compare)
        skip = skip_compare or self.parent.skip_compare
        got, want = self._flatten(test, skip), self._flatten(ref, skip)
        self.comparison_traceback = []
        if set(got) != set(want):
            self.comparison_traceback.append(f"output kinds differ: stored {sorted(want)}, now {sorted(got)}")
            return False
        for key, stored in want.items():
            fresh = got[key]
            if len(fresh) != len(stored):
                self.comparison_traceback.append(f"{key}: {len(stored)} outputs stored, {len(fresh)} now")
                return False
            for old, new in zip(stored, fresh):
                problems = (compare_text(old, new, tolerance) if isinstance(old, str) and isinstance(new, str)
                            else ([] if old == new else [f"{old!r} became {new!r}"]))
                self.comparison_traceback += [f"{key} (trained-numbers cell): {p}" for p in problems]
        return not self.comparison_traceback


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item) is IPyNbCell and cell_tolerance(item.cell.metadata) is not None:
            item.__class__ = ToleranceCell
