"""Per-harvest tally of the tasks and libraries sources name that the KB does not know (the records'
source terms), so the job report says which terms the KB should learn next."""

from __future__ import annotations

from collections import Counter
from typing import Any

from modelport.schema.record import ModelRecord

TOP_N = 50  # names listed per vocabulary in a job report
# Distinct names counted per vocabulary: a hostile source with millions of made-up names must not make
# the tally grow without bound. Past it, new names still count in "records" but are not listed.
MAX_TRACKED = 10_000


class UnknownTerms:
    """Counts, per vocabulary, the records naming each unknown term (each record once per term)."""

    def __init__(self) -> None:
        self._names: dict[str, Counter[str]] = {}
        self._records: Counter[str] = Counter()
        self._untracked: Counter[str] = Counter()

    def add(self, record: ModelRecord) -> None:
        seen: set[tuple[str, str]] = set()
        for t in record.source_terms:
            if (t.vocabulary, t.key) in seen:
                continue
            seen.add((t.vocabulary, t.key))
            names = self._names.setdefault(t.vocabulary, Counter())
            if t.key in names or len(names) < MAX_TRACKED:
                names[t.key] += 1
            else:
                self._untracked[t.vocabulary] += 1
        for vocabulary in {v for v, _ in seen}:
            self._records[vocabulary] += 1

    def summary(self, top: int = TOP_N) -> dict[str, Any]:
        """{vocabulary: {"records": records naming some unknown term, "distinct": distinct names
        (at least; exact up to MAX_TRACKED), "top": {name: records} for the `top` most named}}."""
        out: dict[str, Any] = {}
        for vocabulary, names in sorted(self._names.items()):
            ranked = sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            out[vocabulary] = {"records": self._records[vocabulary], "distinct": len(names),
                               "top": dict(ranked)}
            if self._untracked[vocabulary]:
                out[vocabulary]["untracked"] = self._untracked[vocabulary]
        return out


def describe(summary: dict[str, Any], per_vocabulary: int = 5) -> str:
    """One line for a table cell: `library: fairseq 3, asteroid 1 (+2 more); task: image-to-3d 2`."""
    parts = []
    for vocabulary, info in summary.items():
        top = list((info.get("top") or {}).items())
        names = ", ".join(f"{name} {n}" for name, n in top[:per_vocabulary])
        more = int(info.get("distinct") or 0) - min(len(top), per_vocabulary)
        parts.append(f"{vocabulary}: {names}" + (f" (+{more} more)" if more > 0 else ""))
    return "; ".join(parts)
