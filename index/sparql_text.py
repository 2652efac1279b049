"""What the server reads from a SPARQL text before any engine sees it: the query form and whether
it asks for federation (SERVICE) or an update. One linear pass over SPARQL's lexical tokens (IRIs,
strings, comments and prefixed names skipped whole), so neither a 50 KB run of spaces nor a
keyword inside a string or an IRI can fool it or slow it down."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Each alternative consumes a character class that no other alternative at the same position
# could also consume, so matching never backtracks: the scan is linear in the text. Order matters:
# long strings before short ones.
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<iri><[^<>"{}|^`\\\x00-\x20]*>)
  | (?P<lstring>\"\"\"(?:[^"\\]|\\.|"(?!""))*(?:\"\"\"|\Z)|'''(?:[^'\\]|\\.|'(?!''))*(?:'''|\Z))
  | (?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
  | (?P<var>[?$][^\s{}()\[\],;"'<>=!&|+*/^?$\#]*)
  | (?P<word>[^\s{}()\[\],;"'<>=!&|+*/^?$\#]+)
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)

QUERY_FORMS = ("SELECT", "ASK", "CONSTRUCT", "DESCRIBE")
UPDATE_WORDS = ("INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "COPY", "MOVE", "ADD", "WITH")


@dataclass(frozen=True)
class QueryShape:
    form: str | None  # SELECT, ASK, CONSTRUCT, DESCRIBE, an update keyword, or None (no keyword found)
    service: bool  # a SERVICE keyword anywhere outside strings, IRIs and comments

    @property
    def is_update(self) -> bool:
        return self.form in UPDATE_WORDS


def inspect(text: str) -> QueryShape:
    form: str | None = None
    service = False
    skip_prologue = 0  # tokens still belonging to a PREFIX/BASE declaration
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        if kind != "word":
            skip_prologue = max(0, skip_prologue - 1)
            continue
        word = m.group()
        if ":" in word:  # a prefixed name (ex:SERVICE) is never a keyword
            skip_prologue = max(0, skip_prologue - 1)
            continue
        upper = word.upper()
        if upper == "SERVICE":
            service = True
        if form is None:
            if skip_prologue:
                skip_prologue -= 1
            elif upper == "PREFIX":
                skip_prologue = 2  # the prefix name, then its IRI
            elif upper == "BASE":
                skip_prologue = 1
            elif upper in QUERY_FORMS or upper in UPDATE_WORDS:
                form = upper
    return QueryShape(form, service)
