"""Writing one section of ``benchmarks/RESULTS.md``: the text between ``<!-- name:start -->`` and
``<!-- name:end -->`` is replaced; a section not there yet is added under ``heading`` (before the line
``before`` when given, else at the end)."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, heading: str, before: str | None = None) -> None:
    doc = RESULTS.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text}\n{end}"
    if start in doc:
        doc = re.sub(re.escape(start) + ".*" + re.escape(end), lambda _: block, doc, flags=re.S)
    elif before is not None and before in doc:
        doc = doc.replace(before, f"{heading}\n\n{block}\n\n{before}", 1)
    else:
        doc = doc.rstrip() + f"\n\n{heading}\n\n{block}\n"
    RESULTS.write_text(doc)
