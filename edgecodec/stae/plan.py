"""Budget planning for STAE offloading (seed 001, eqs. 2-5): pick the frame / spatial budget (alpha, beta) with
the best accuracy whose completion time meets a deadline at a given uplink rate.

Completion time of a table row (eq. 4)::

    t = bytes * 8 / rate                                    (eq. 2, the entropy-coded bytes really sent)
        + t_fa + t_sa + t_ee + t_ed + t_fr + t_vit          (eq. 3, seconds, measured by `edgecodec stae eval`)

Rates and times are parsed from human strings ("100Mbps", "12MB/s", "100ms", "250 us"); prefixes are decimal SI
(k = 1e3, M = 1e6, G = 1e9, T = 1e12) and case-insensitive, while the unit's b / B tells bits from bytes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError

TIME_KEYS = ("t_fa", "t_sa", "t_ee", "t_ed", "t_fr", "t_vit")
ROW_KEYS = ("alpha", "beta", "bytes", "accuracy") + TIME_KEYS
FEASIBLE_EPS_S = 1e-12                   # slack on t <= deadline for float rounding of the sums

_NUMBER = r"[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d.+-][^\s]*)\s*$")
_PREFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BIT_UNITS = ("bps", "b/s", "bit/s", "bits/s")
_BYTE_UNITS = ("Bps", "B/s", "byte/s", "bytes/s", "Byte/s", "Bytes/s")
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,         # divisors
               "ms": 1e3, "msec": 1e3, "millisecond": 1e3, "milliseconds": 1e3,
               "us": 1e6, "\u00b5s": 1e6, "\u03bcs": 1e6, "usec": 1e6, "microsecond": 1e6,
               "microseconds": 1e6, "ns": 1e9, "nsec": 1e9, "nanosecond": 1e9, "nanoseconds": 1e9}
_RATE_FORMS = '"100Mbps", "1.2 Mbps", "500kbps", "2e6bps", "12MB/s" (B = bytes), "1 Gbit/s"'
_TIME_FORMS = '"100ms", "0.1s", "250 us", "1.5 sec", "800ns"'


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise EdgecodecError(f"{what} must be a number, got {v!r}")
    return float(v)


def _split(text, what: str, forms: str) -> tuple[float, str]:
    m = _QUANTITY.match(text)
    if not m:
        raise EdgecodecError(f"cannot read {what} {text!r}: expected a number and a unit, e.g. {forms}")
    return float(m.group(1)), m.group(2)


def _positive(value: float, text, what: str, forms: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise EdgecodecError(f"{what} {text!r} must be positive and finite, e.g. {forms}")
    return value


def parse_rate(text) -> float:
    """Bits per second from "100Mbps", "1.2 Mbps", "500kbps", "2e6bps", "12MB/s" (bytes/s), "1 Gbit/s".

    A plain positive number is taken as bits per second. Raises EdgecodecError on anything else.
    """
    if not isinstance(text, str):
        return _positive(_number(text, "rate"), text, "rate", _RATE_FORMS)
    value, unit = _split(text, "rate", _RATE_FORMS)
    for prefix, scale in _PREFIXES.items():
        if prefix and unit[:1].lower() != prefix:
            continue
        rest = unit[len(prefix):]
        if rest in _BIT_UNITS:
            return _positive(value * scale, text, "rate", _RATE_FORMS)
        if rest in _BYTE_UNITS:
            return _positive(value * scale * 8.0, text, "rate", _RATE_FORMS)
    raise EdgecodecError(f"unknown rate unit {unit!r} in {text!r}; use bps, kbps, Mbps, Gbps (bits) or B/s, kB/s, "
                    f"MB/s (bytes), e.g. {_RATE_FORMS}")


def parse_time(text) -> float:
    """Seconds from "100ms", "0.1s", "250 us", "1.5 sec", "800ns"; a plain positive number is seconds.

    Raises EdgecodecError on anything else (including zero or negative durations).
    """
    if not isinstance(text, str):
        return _positive(_number(text, "time"), text, "time", _TIME_FORMS)
    value, unit = _split(text, "time", _TIME_FORMS)
    div = _TIME_UNITS.get(unit, _TIME_UNITS.get(unit.lower()))
    if div is None:
        raise EdgecodecError(f"unknown time unit {unit!r} in {text!r}; use s, ms, us or ns, e.g. {_TIME_FORMS}")
    return _positive(value / div, text, "time", _TIME_FORMS)


def _check_row(row, where: str = "table row") -> dict:
    if not isinstance(row, dict):
        raise EdgecodecError(f"{where} must be a dict with keys {', '.join(ROW_KEYS)}, got {type(row).__name__}")
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise EdgecodecError(f"{where} lacks {', '.join(missing)} (needs {', '.join(ROW_KEYS)})")
    alpha = row["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or alpha < 1:
        if not (isinstance(alpha, float) and alpha.is_integer() and alpha >= 1):
            raise EdgecodecError(f"{where}: alpha must be an integer >= 1, got {alpha!r}")
    beta = _number(row["beta"], f"{where}: beta")
    if not 0.0 < beta <= 1.0:
        raise EdgecodecError(f"{where}: beta must be a fraction in (0, 1], got {beta!r}")
    size = _number(row["bytes"], f"{where}: bytes")
    if not math.isfinite(size) or size < 0:
        raise EdgecodecError(f"{where}: bytes must be >= 0 and finite, got {row['bytes']!r}")
    if not math.isfinite(_number(row["accuracy"], f"{where}: accuracy")):
        raise EdgecodecError(f"{where}: accuracy must be finite, got {row['accuracy']!r}")
    for k in TIME_KEYS:
        t = _number(row[k], f"{where}: {k}")
        if not math.isfinite(t) or t < 0:
            raise EdgecodecError(f"{where}: {k} must be a time in seconds >= 0, got {row[k]!r}")
    return row


def completion_time(row: dict, rate_bps) -> float:
    """Eq. (4): bytes * 8 / rate + t_fa + t_sa + t_ee + t_ed + t_fr + t_vit, in seconds.

    Parameters
    ----------
    row : dict
        A table row (keys alpha, beta, bytes, accuracy, t_fa, t_sa, t_ee, t_ed, t_fr, t_vit; times in seconds).
    rate_bps : float or str
        Uplink rate in bits per second (or a string for `parse_rate`).
    """
    _check_row(row)
    rate = parse_rate(rate_bps)
    return float(row["bytes"]) * 8.0 / rate + sum(float(row[k]) for k in TIME_KEYS)


def _rank_key(row: dict):
    """Sort key of the planner: best accuracy, then fewer bytes, then larger alpha, then faster, then larger beta."""
    return (-float(row["accuracy"]), float(row["bytes"]), -int(row["alpha"]), row["completion"], -float(row["beta"]))


def plan(table_rows, rate_bps, deadline_s) -> dict:
    """Eq. (5): the row with the best accuracy among those whose completion time meets the deadline.

    Parameters
    ----------
    table_rows : list of dict
        Rows as written by `edgecodec stae eval` (see `completion_time`).
    rate_bps : float or str
        Uplink rate, bits per second.
    deadline_s : float or str
        Deadline delta, seconds.

    Returns
    -------
    dict
        ``choice`` (the chosen row or None), ``feasible`` (rows meeting the deadline, best first), ``table``
        (every row in input order, with ``t_com``, ``t_cmp``, ``completion`` and ``feasible`` added),
        ``fastest`` (the row with the smallest completion time), ``rate_bps`` and ``deadline_s``.
        Ties on accuracy go to fewer bytes, then to the larger alpha.
    """
    if not isinstance(table_rows, (list, tuple)):
        raise EdgecodecError(f"plan needs a list of table rows, got {type(table_rows).__name__}")
    if not table_rows:
        raise EdgecodecError("the STAE table has no rows; run `edgecodec stae eval` first")
    rate = parse_rate(rate_bps)
    deadline = parse_time(deadline_s)
    table = []
    for i, row in enumerate(table_rows):
        _check_row(row, f"table row {i}")
        r = dict(row)
        r["t_com"] = float(row["bytes"]) * 8.0 / rate
        r["t_cmp"] = sum(float(row[k]) for k in TIME_KEYS)
        r["completion"] = r["t_com"] + r["t_cmp"]
        r["feasible"] = r["completion"] <= deadline + FEASIBLE_EPS_S
        table.append(r)
    feasible = sorted((r for r in table if r["feasible"]), key=_rank_key)
    fastest = min(table, key=lambda r: (r["completion"],) + _rank_key(r))
    return {"choice": feasible[0] if feasible else None, "feasible": feasible, "table": table,
            "fastest": fastest, "rate_bps": rate, "deadline_s": deadline}


def _fmt_rate(rate: float) -> str:
    return f"{rate / 1e6:g} Mbps"


def _fmt_ms(t: float) -> str:
    return f"{t * 1e3:.2f}"


def _fmt_budget(row: dict) -> str:
    return f"alpha={int(row['alpha'])}, beta={float(row['beta']) * 100:g}%"


def format_plan(result: dict, rate_bps=None, deadline_s=None) -> str:
    """A readable table of `plan`'s result (times in ms) and a final "chosen: ..." or "no (alpha, beta) ..." line."""
    if not isinstance(result, dict) or "table" not in result or "choice" not in result:
        raise EdgecodecError("format_plan needs the dict returned by plan()")
    rate = parse_rate(rate_bps) if rate_bps is not None else float(result["rate_bps"])
    deadline = parse_time(deadline_s) if deadline_s is not None else float(result["deadline_s"])
    cols = ["alpha", "beta", "bytes", "accuracy", "t_com"] + list(TIME_KEYS) + ["completion", "feasible"]
    lines_rows = []
    for r in result["table"]:
        lines_rows.append([str(int(r["alpha"])), f"{float(r['beta']) * 100:g}%", f"{float(r['bytes']):.0f}",
                           f"{float(r['accuracy']):.4g}", _fmt_ms(r["t_com"])]
                          + [_fmt_ms(float(r[k])) for k in TIME_KEYS]
                          + [_fmt_ms(r["completion"]), "yes" if r["feasible"] else "no"])
    header = [c if c in ("alpha", "beta", "bytes", "accuracy", "feasible") else f"{c} ms" for c in cols]
    widths = [max(len(h), *(len(row[i]) for row in lines_rows)) if lines_rows else len(h)
              for i, h in enumerate(header)]
    out = [f"STAE plan at {_fmt_rate(rate)}, deadline {_fmt_ms(deadline)} ms",
           "  ".join(h.rjust(w) for h, w in zip(header, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in lines_rows]
    choice = result["choice"]
    if choice is not None:
        out.append(f"chosen: {_fmt_budget(choice)} (accuracy {float(choice['accuracy']):.4g}, "
                   f"completion {_fmt_ms(choice['completion'])} ms <= {_fmt_ms(deadline)} ms)")
    else:
        fastest = result.get("fastest") or min(result["table"], key=lambda r: r["completion"])
        out.append(f"no (alpha, beta) meets the deadline of {_fmt_ms(deadline)} ms at {_fmt_rate(rate)}; "
                   f"the fastest needs {_fmt_ms(fastest['completion'])} ms ({_fmt_budget(fastest)})")
    return "\n".join(out)


def load_table(path) -> list[dict]:
    """The rows of the JSON table written by `edgecodec stae eval` ({"rows": [...], ...}), each checked."""
    p = Path(path)
    hint = "run `edgecodec stae eval` first"
    if not p.is_file():
        raise EdgecodecError(f"STAE table not found: {p}; {hint}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgecodecError(f"STAE table {p} is unreadable or not JSON ({e.__class__.__name__}); {hint}") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise EdgecodecError(f"STAE table {p} has no \"rows\" list; {hint}")
    for i, row in enumerate(rows):
        try:
            _check_row(row, f"row {i}")
        except EdgecodecError as e:
            raise EdgecodecError(f"STAE table {p} is corrupt: {e}; {hint}") from None
    return rows
