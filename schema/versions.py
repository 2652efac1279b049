"""Version ranges of runtimes and libraries, compared as PEP 440 versions (via `packaging`)."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, field_validator


def parse_version(text: str) -> Version | None:
    """Lenient parse: strips local tags such as '+cpu' and returns None for non-versions."""
    try:
        return Version(text.strip())
    except (InvalidVersion, AttributeError):
        return None


def release_prefix(text: str, parts: int) -> str:
    """'2.13.0+cpu' → '2.13' for parts=2."""
    v = parse_version(text)
    if v is None:
        return text
    rel = list(v.release) + [0] * parts
    return ".".join(str(x) for x in rel[:parts])


class VersionRange(BaseModel):
    """[min, max) by default; either end may be open (None)."""

    model_config = ConfigDict(extra="forbid")

    min: str | None = None
    max: str | None = None
    min_inclusive: bool = True
    max_inclusive: bool = False

    @field_validator("min", "max")
    @classmethod
    def _valid(cls, v: str | None) -> str | None:
        if v is not None and parse_version(v) is None:
            raise ValueError(f"not a version: {v!r}")
        return v

    def contains(self, version: str) -> bool:
        v = parse_version(version)
        if v is None:
            return False
        if self.min is not None:
            lo = Version(self.min)
            if v < lo or (v == lo and not self.min_inclusive):
                return False
        if self.max is not None:
            hi = Version(self.max)
            if v > hi or (v == hi and not self.max_inclusive):
                return False
        return True

    def to_specifier(self) -> str:
        parts = []
        if self.min is not None:
            parts.append((">=" if self.min_inclusive else ">") + self.min)
        if self.max is not None:
            parts.append(("<=" if self.max_inclusive else "<") + self.max)
        return ",".join(parts)

    def __str__(self) -> str:
        return self.to_specifier() or "any"

    @classmethod
    def from_specifier(cls, spec: str) -> VersionRange | None:
        """Best range covering a PEP 440 specifier ('==1.9.1' → [1.9.1, 1.9.1])."""
        try:
            ss = SpecifierSet(spec)
        except InvalidSpecifier:
            return None
        rng = cls()
        for s in ss:
            ver = s.version.rstrip(".*")
            if parse_version(ver) is None:
                continue
            if s.operator in ("==", "==="):
                if s.version.endswith(".*"):
                    rng.min, rng.max = ver, _bump(ver, len(Version(ver).release) - 1)
                else:
                    rng.min, rng.max, rng.max_inclusive = ver, ver, True
            elif s.operator == ">=":
                rng.min = ver
            elif s.operator == ">":
                rng.min, rng.min_inclusive = ver, False
            elif s.operator == "<":
                rng.max = ver
            elif s.operator == "<=":
                rng.max, rng.max_inclusive = ver, True
            elif s.operator == "~=":
                rel = Version(ver).release
                rng.min, rng.max = ver, _bump(ver, max(len(rel) - 2, 0))
        return rng

    @classmethod
    def with_policy(cls, version: str, policy: str) -> VersionRange | None:
        """Range implied by a produced-with version under a KB compatibility policy.

        Policies (named in ontology/kb): "exact" (same release), "same-minor", "same-major",
        "min-only" (that version or newer)."""
        v = parse_version(version)
        if v is None:
            return None
        base = v.base_version
        if policy == "exact":
            return cls(min=base, max=base, max_inclusive=True)
        if policy == "same-minor":
            return cls(min=base, max=_bump(base, 1))
        if policy == "same-major":
            return cls(min=base, max=_bump(base, 0))
        return cls(min=base)


def _bump(version: str, index: int) -> str:
    """Next release at position `index`: _bump('1.9.1', 1) == '1.10'."""
    rel = list(Version(version).release) + [0, 0, 0]
    rel = rel[: index + 1]
    rel[index] += 1
    return ".".join(str(x) for x in rel)
