"""The order-preserving codes behind exact range queries (index/facts.py): version codes order like
PEP 440 versions, float codes like floats, and a range's (lo, hi) codes contain exactly the versions
`VersionRange.contains` accepts."""

from __future__ import annotations

import itertools
import random

from packaging.version import Version

from modelport.index.facts import CODE_MAX, float_code, range_codes, sort_key, sort_key_row, version_code
from modelport.schema.versions import VersionRange

VERSIONS = ["0.1", "0.5", "1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.2", "1.9",
            "1.10", "1.14", "1.14.0", "1.14.1", "1.16", "1.20", "2.0", "10.0", "10.15", "11.5", "2024.1", "4000"]


def test_version_codes_order_like_versions() -> None:
    for a, b in itertools.product(VERSIONS, repeat=2):
        va, vb = Version(a), Version(b)
        ca, cb = version_code(a), version_code(b)
        assert ca is not None and cb is not None
        assert (ca < cb) == (va < vb) and (ca == cb) == (va == vb), (a, b)
    assert version_code("not a version") is None


def test_float_codes_order_like_floats() -> None:
    rnd = random.Random(1)
    xs = [0.0, -0.0, 1e-9, -1e-9, 0.9, 0.9000001, 90.0, 1e12, -5.5, 50.0, 49.99] + [rnd.uniform(-1e6, 1e6)
                                                                                  for _ in range(200)]
    for a, b in itertools.product(xs, repeat=2):
        if a < b and (b - a) > 1e-9 * max(abs(a), abs(b)):
            assert float_code(a) < float_code(b), (a, b)
        if a == b:
            assert float_code(a) == float_code(b)


def test_range_codes_contain_what_the_range_contains() -> None:
    ranges = [None, VersionRange(), VersionRange(min="1.14"), VersionRange(min="1.14", min_inclusive=False),
              VersionRange(max="1.20"), VersionRange(max="1.20", max_inclusive=True),
              VersionRange(min="1.0", max="1.0", max_inclusive=True), VersionRange(min="8.5", max="10.0")]
    for rng in ranges:
        lo, hi = range_codes(rng)
        for v in VERSIONS:
            code = version_code(v)
            assert code is not None
            assert (lo <= code < hi) == (rng is None or rng.contains(v)), (rng, v)
        assert (hi == CODE_MAX) == (rng is None or rng.max is None)


def test_sort_keys_order_by_value_then_row() -> None:
    keys = [(sort_key(v, r), v, r) for v in (0, 10, 99) for r in (3, 1, 2)]
    desc = sorted(keys, reverse=True)
    assert [(v, r) for _, v, r in desc] == sorted(((v, r) for _, v, r in keys), key=lambda t: (-t[0], t[1]))
    assert all(sort_key_row(k) == r for k, _, r in keys)
