"""Helpers of the fuzz suite (tests/test_fuzz_*.py): mutations of real files, hostile values,
the typed-errors-only check and the case counter.

Every fuzz test is seeded (``derandomize=True``: the same cases on every run and machine), bounded
by ``max_examples`` and has no per-example deadline; the suite's total time is what
``make test`` pays (about a minute on 2 cores).
"""

from __future__ import annotations

import re
import traceback
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from capplan.errors import CapplanError

#: cases run per fuzz test, summed over the suite (reported by the count tests)
CASES: Counter = Counter()

#: a string that must never appear in an error: planted in mutated files
CANARY = "Qx5FUZZCANARYw8"

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])

#: numbers that broke (or nearly broke) the readers in the issue 10 adversarial pass, and kin
HOSTILE_NUMBERS = (
    "1e30", "1e300", "-1e300", "1e400", "-1e400", "1e-300", "-1", "0", "-0", "0.0", "nan", "NaN",
    "-nan", "inf", "-inf", "Infinity", "92203685478", "9223372036854775808", "1" + "0" * 25,
    "9" * 400, "1" + "0" * 4400, "18446744073709551616", "", " ", "1.2.3", "..", ".", "-", "+",
    "1e", "e5", "0x10", "1_000", "\u0661\u0662", "1,5", "N/A", "null", "true", "[]", "{}",
    '"', "'", "\\", "\x00", "1700000000", "1700000000000", "1700000000000000000", "-1700000000",
    "253402300800", "2024-01-01T00:00:00Z", "0000-00-00", "9999-12-31T23:59:59Z",
    "1677-09-21T00:12:43Z", "2262-04-11T23:47:17Z",
)

_NUM = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def hostile_number() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


def cell() -> st.SearchStrategy[str]:
    """One CSV cell or token: a hostile number, short text, or the canary."""
    return st.one_of(hostile_number(), st.text(max_size=12), st.just(CANARY))


def _lines(text: str) -> list[str]:
    return text.split("\n")


def plausible_number() -> st.SearchStrategy[str]:
    """A number a real file could hold (the mild half of a mutation)."""
    return st.one_of(st.integers(0, 256).map(str),
                     st.floats(0, 1e5, allow_nan=False).map(lambda v: f"{v:.6g}"))


@st.composite
def mutated(draw, seed: bytes, numbers: st.SearchStrategy[str] | None = None) -> bytes:
    """``seed`` after 1 to 4 mutations: number swaps (from ``numbers``, default
    :func:`hostile_number`), line edits, truncation, byte noise."""
    numbers = numbers if numbers is not None else hostile_number()
    text = seed.decode("latin-1")  # one char per byte: any byte string round-trips
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("number", "number", "number", "truncate", "del_line",
                                   "dup_line", "swap_lines", "insert_line", "canary_line",
                                   "byte", "insert_bytes", "replace_token")))
        lines = _lines(text)
        if op == "number":
            hits = list(_NUM.finditer(text))
            if hits:
                m = hits[draw(st.integers(0, len(hits) - 1))]
                text = text[:m.start()] + draw(numbers) + text[m.end():]
        elif op == "truncate" and text:
            text = text[:draw(st.integers(0, len(text) - 1))]
        elif op == "del_line" and len(lines) > 1:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif op == "dup_line" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == "swap_lines" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == "insert_line":
            lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=40)))
            text = "\n".join(lines)
        elif op == "canary_line":
            i = draw(st.integers(0, len(lines)))
            # the canary as a whole line, or in place of a field of an existing line
            if i < len(lines) and draw(st.booleans()):
                lines[i] = re.sub(r"[^\s,:=\"]+", CANARY, lines[i], count=1)
            else:
                lines.insert(i, CANARY)
            text = "\n".join(lines)
        elif op == "byte" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + chr(draw(st.integers(0, 255))) + text[i + 1:]
        elif op == "insert_bytes":
            i = draw(st.integers(0, len(text)))
            noise = draw(st.binary(min_size=1, max_size=8)).decode("latin-1")
            text = text[:i] + noise + text[i:]
        elif op == "replace_token":
            toks = list(re.finditer(r"[^\s,:=\"{}\[\]]+", text))
            if toks:
                m = toks[draw(st.integers(0, len(toks) - 1))]
                text = text[:m.start()] + draw(cell()) + text[m.end():]
    # text from st.text() may hold characters beyond latin-1: write those as UTF-8
    return text.encode("latin-1", errors="ignore") if all(ord(c) < 256 for c in text) \
        else text.encode("utf-8", errors="surrogatepass")


def typed_only(call, *, canary: str | None = CANARY):
    """Run ``call()``: its result, or ``None`` when it raised a capplan error.

    Any other exception propagates (the fuzz test fails and Hypothesis shrinks the input).  A
    capplan error whose message, hint or chained causes hold ``canary`` fails too: parse errors
    never quote a file's content.
    """
    try:
        return call()
    except CapplanError as exc:
        if canary is not None:
            text = "".join(traceback.format_exception(exc))
            assert canary not in text, f"an error quotes the file's content:\n{text[-1500:]}"
        return None


def report(request, title: str, names: tuple[str, ...], minimum: int) -> int:
    """Write the case count of ``names`` to the terminal; fail below ``minimum``."""
    n = sum(CASES[k] for k in names)
    line = f"{title}: {n} generated cases, 0 tracebacks (" + ", ".join(
        f"{k} {CASES[k]}" for k in names) + ")"
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    cm = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is not None and cm is not None:
        with cm.global_and_fixture_disabled():  # shown even when the test passes
            tr.write_line("")
            tr.write_line(line)
    assert n >= minimum, line
    return n
