"""Integer probability tables and the two frame entropy coders (rANS and Golomb-Rice) built on them.

Hardware-exact decoding: the tables are computed once with float math when a model is exported
(`pmf_table`) and stored as int64 arrays; coding only ever sees those integers, so a bitstream decodes the
same everywhere. Row r of a table is a zero-mean distribution over the symbols v = -M..M (M = max_symbol,
column j holds v = j - M); every entry is >= 1 and each row sums exactly to 2**precision.

ANS (`mode="ans"`) uses constriction's `AnsCoder` (32-bit words, 24-bit model precision) with one
`Categorical` model per distinct row. constriction's `Categorical` only accepts float probabilities, so a row
is passed as `table / 2**precision` in float64: exact (precision <= 24), summing to exactly 1.0, and turned
by constriction's fast (`perfect=False`) quantizer into the 24-bit left cumulatives
``floor(C_j * (2**24 - n) / 2**precision) + j`` (C_j the integer cumulative, n the row length); every
product is exact in float64, so the coder's model is a fixed integer function of the table (`ans_weights`,
which a hardware decoder reproduces; close to the table scaled to 2**24, each entry within +-1 of
t_j * (2**24 - n) / 2**precision + 1). Within a part,
symbols are coded grouped by row (rows ascending, each row's symbols in raster order); parts are pushed onto
one stack in reverse at `finish()` so the decoder pops them in forward order. Under all parts lies a 16-bit
end marker that `close()` checks before requiring an empty coder (an emptied coder would otherwise keep
decoding symbol 0 silently).

Rice (`mode="rice"`, what simple hardware does): v -> zigzag u (2v for v >= 0, -2v-1 otherwise); with
k = rice_parameters(table)[row] and q = u >> k:

- q < 16: q one bits, a zero bit, then the k low bits of u (MSB first);
- q >= 16 (escape): 16 one bits, then u itself in E = bit_length(2*M) bits (9 bits for M = 255), no k bits.

The unary run a decoder reads is thus never longer than 16 bits, so a corrupt stream cannot make it run
away. Symbols go in raster order, all parts back to back, bits packed MSB-first and zero-padded to a byte.
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from base.errors import BitstreamError

ESCAPE_RUN = 16                     # Rice: unary runs of 16 ones mean "escape"
MAX_PRECISION = 24                  # constriction's model precision: integer tables must not exceed it
_ANS_END_MARKER = np.array([0xC3, 0x5A], dtype=np.int32)   # two Uniform(256) symbols under all parts
_RICE_CHUNK_BYTES = 1 << 16         # Rice decoder: bits prepared per chunk
_ESC_FLAG = 1 << 40                 # Rice decoder: marks escaped symbols in its output list


# ---------------------------------------------------------------------------------------------------------
# Tables


def scale_table(n: int = 64, lo: float = 0.11, hi: float = 64.0) -> np.ndarray:
    """`n` log-spaced scales from `lo` to `hi` (both included), float64."""
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"scale_table needs n >= 2, got {n!r}")
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"scale_table needs 0 < lo < hi (finite), got lo={lo!r}, hi={hi!r}")
    return np.exp(np.linspace(math.log(lo), math.log(hi), int(n))).astype(np.float64)


def _half_pmf(family: str, scale: float, max_symbol: int) -> list[float]:
    """P(v) for v = 0..max_symbol of the zero-mean discretized distribution, the tail lumped into v = M."""
    if family == "gaussian":
        c = 1.0 / (scale * math.sqrt(2.0))

        def upper(x):                               # P(X > x), x >= 0
            return 0.5 * math.erfc(x * c)
        p0 = math.erf(0.5 * c)
    else:
        def upper(x):
            return 0.5 * math.exp(-x / scale)
        p0 = -math.expm1(-0.5 / scale)
    half = [p0]
    for v in range(1, max_symbol):
        half.append(upper(v - 0.5) - upper(v + 0.5))
    half.append(upper(max_symbol - 0.5))
    return half


def _quantize_symmetric(half: list[float], total: int) -> np.ndarray:
    """Integer half table (v = 0..M) with entries >= 1, center + 2 * sum(others) == total.

    Starts from max(1, floor(x)), x = p * total, and moves the difference two units at a time (a +-v pair
    by 1 each, or the center by 2) greedily for the cross entropy: adding where x / q is largest, removing
    where it is smallest among entries that stay >= 1 and keep the table unimodal (so the mass the
    weight-1 tail entries need comes proportionally from the others). The center's parity is forced (total
    is even); if that leaves it below |v| = 1 it takes 2 units from the pair with the smallest x / q.
    Deterministic: ties go to the smaller |v|.
    """
    x = np.asarray(half, dtype=np.float64) * total
    q = np.maximum(1, np.floor(x)).astype(np.int64)
    d = total - int(q[0] + 2 * q[1:].sum())
    if d % 2:
        step = 1 if d > 0 or q[0] == 1 else -1
        q[0] += step
        d -= step

    def removable() -> np.ndarray:
        """Removal keys x / q; +inf where a step would break >= 1 or unimodality."""
        nxt = np.append(q[1:], 1)                   # the lumped tail bin only needs to stay >= 1
        ok = q - 1 >= np.maximum(nxt, 1)
        ok[0] = q[0] - 2 >= max(q[1] if q.size > 1 else 1, 1)
        return np.where(ok, x / q, np.inf)

    while d != 0:
        if d > 0:
            i = int(np.argmax(x / q))
            q[i] += 2 if i == 0 else 1
            d -= 2
        else:
            key = removable()
            i = int(np.argmin(key))
            if not np.isfinite(key[i]):
                raise ValueError("pmf_table: precision too small for this many symbols")
            q[i] -= 2 if i == 0 else 1
            d += 2
    while q.size > 1 and q[0] < q[1]:
        q[0] += 2
        key = removable()
        key[0] = np.inf
        i = int(np.argmin(key))
        if not np.isfinite(key[i]):
            raise ValueError("pmf_table: precision too small for this many symbols")
        q[i] -= 1
    return q


def pmf_table(family: str, scales, max_symbol: int = 255, precision: int = 16) -> np.ndarray:
    """Integer PMF table, one row per scale, over the symbols -max_symbol..max_symbol.

    Parameters
    ----------
    family : str
        "gaussian" (zero mean, std = scale) or "laplace" (zero mean, scale b = scale).
    scales : array_like
        Positive finite scales (1-D).
    max_symbol : int
        M: the table has 2*M + 1 columns; the tails beyond +-M are lumped into the end bins.
    precision : int
        Each row sums exactly to 2**precision (1..24; 2**precision >= 2 * (2*M + 1)).

    Returns
    -------
    np.ndarray
        int64, shape (len(scales), 2*M + 1), every entry >= 1, each row symmetric.
    """
    if family not in ("gaussian", "laplace"):
        raise ValueError(f"pmf_table: family must be 'gaussian' or 'laplace', got {family!r}")
    if not (isinstance(max_symbol, (int, np.integer)) and max_symbol >= 1):
        raise ValueError(f"pmf_table: max_symbol must be an int >= 1, got {max_symbol!r}")
    if not (isinstance(precision, (int, np.integer)) and 1 <= precision <= MAX_PRECISION):
        raise ValueError(f"pmf_table: precision must be an int in [1, {MAX_PRECISION}], got {precision!r}")
    n = 2 * int(max_symbol) + 1
    total = 1 << int(precision)
    if total < 2 * n:
        raise ValueError(f"pmf_table: 2**precision = {total} is too small for {n} symbols (needs >= {2 * n})")
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("pmf_table: scales must be a non-empty 1-D array of positive finite numbers")
    out = np.empty((s.size, n), dtype=np.int64)
    for r, scale in enumerate(s.tolist()):
        half = _quantize_symmetric(_half_pmf(family, scale, int(max_symbol)), total)
        out[r, :max_symbol] = half[:0:-1]
        out[r, max_symbol:] = half
    return out


def _check_tables(tables) -> tuple[np.ndarray, int, int]:
    """(tables as int64, max_symbol M, precision) after checking the integer-table invariants."""
    t = np.asarray(tables)
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"tables must be a 2-D integer array, got shape {t.shape} dtype {t.dtype}")
    if t.shape[0] < 1 or t.shape[1] < 3 or t.shape[1] % 2 == 0:
        raise ValueError(f"tables need >= 1 row and an odd number (>= 3) of columns, got shape {t.shape}")
    t = t.astype(np.int64)
    if t.min() < 1:
        raise ValueError("tables: every entry must be >= 1")
    sums = t.sum(axis=1)
    total = int(sums[0])
    if np.any(sums != total) or total & (total - 1) or not 2 <= total <= 1 << MAX_PRECISION:
        raise ValueError(f"tables: every row must sum to the same power of two <= 2**{MAX_PRECISION}")
    return t, (t.shape[1] - 1) // 2, total.bit_length() - 1


def expected_bits(table) -> np.ndarray:
    """Entropy in bits per symbol of each row of an integer table (float64, one value per row)."""
    t, _, precision = _check_tables(table)
    p = t / float(1 << precision)
    return -(p * np.log2(p)).sum(axis=1)


def _zigzag_columns(max_symbol: int) -> np.ndarray:
    v = np.arange(-max_symbol, max_symbol + 1, dtype=np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _rice_escape_bits(max_symbol: int) -> int:
    return (2 * int(max_symbol)).bit_length()


def rice_code_lengths(max_symbol: int, k: int) -> np.ndarray:
    """Rice code length in bits of each symbol v = -M..M (column order) for parameter `k`."""
    u = _zigzag_columns(max_symbol)
    q = u >> k
    return np.where(q < ESCAPE_RUN, q + 1 + k, ESCAPE_RUN + _rice_escape_bits(max_symbol))


def rice_expected_bits(table, ks=None) -> np.ndarray:
    """Expected Rice code length per row (bits/symbol) with `ks` (default `rice_parameters(table)`)."""
    t, m, precision = _check_tables(table)
    ks = rice_parameters(t) if ks is None else np.asarray(ks, dtype=np.int64)
    lengths = np.stack([rice_code_lengths(m, int(k)) for k in ks])
    return (t * lengths).sum(axis=1) / float(1 << precision)


def rice_parameters(table) -> np.ndarray:
    """Golomb-Rice k per row (int64) minimizing the exact expected code length, escape rule included.

    k ranges over 0..bit_length(2*M); ties go to the smaller k. Costs are exact integer sums of
    table entry * code length.
    """
    t, m, _ = _check_tables(table)
    kmax = _rice_escape_bits(m)
    cost = np.stack([t @ rice_code_lengths(m, k) for k in range(kmax + 1)], axis=1)
    return np.argmin(cost, axis=1).astype(np.int64)


def ans_weights(table) -> np.ndarray:
    """The 24-bit weights the ANS coder really uses for each table row (int64, rows sum to 2**24).

    constriction's fast quantizer maps a row with integer cumulatives C_0 = 0 .. C_n = 2**precision to
    left cumulatives floor(C_j * (2**24 - n) / 2**precision) + j; these are their differences (each >= 1).
    Exact integer math, the same function a hardware decoder implements.
    """
    t, _, precision = _check_tables(table)
    n = t.shape[1]
    cum = np.concatenate([np.zeros((t.shape[0], 1), np.int64), np.cumsum(t, axis=1)], axis=1)
    left = (cum * ((1 << MAX_PRECISION) - n)) >> precision
    left += np.arange(n + 1)
    return np.diff(left, axis=1)


# ---------------------------------------------------------------------------------------------------------
# Frame coders


def _as_int_array(a, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an integer array, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_rows(rows: np.ndarray, nrows: int) -> None:
    if rows.size and (rows.min() < 0 or rows.max() >= nrows):
        raise ValueError(f"rows must index the table (0..{nrows - 1}), got range "
                         f"[{int(rows.min())}, {int(rows.max())}]")


def _group_by_row(rows: np.ndarray):
    """(order, distinct rows, bounds): symbols order[bounds[j]:bounds[j+1]] use row distinct[j], raster order."""
    order = np.argsort(rows, kind="stable")
    distinct, starts = np.unique(rows[order], return_index=True)
    bounds = np.append(starts, rows.size)
    return order, distinct, bounds


class _Models:
    """Lazily built constriction models, one per table row."""

    def __init__(self, tables: np.ndarray, precision: int):
        self._tables = tables
        self._scale = float(1 << precision)
        self._cache: dict[int, object] = {}

    def __getitem__(self, row: int):
        m = self._cache.get(row)
        if m is None:
            probs = self._tables[row].astype(np.float64) / self._scale    # exact: dyadic, <= 24 bits
            m = constriction.stream.model.Categorical(probs, perfect=False)
            self._cache[row] = m
        return m


def _check_mode(mode: str) -> str:
    if mode not in ("ans", "rice"):
        raise ValueError(f"entropy mode must be 'ans' or 'rice', got {mode!r}")
    return mode


def check_ans_end(coder, marker: np.ndarray, what: str) -> None:
    """Pop the end marker (Uniform(256) symbols pushed under everything else) and require an empty coder;
    anything else is a BitstreamError naming `what`."""
    try:
        got = coder.decode(constriction.stream.model.Uniform(256), len(marker))
        empty = coder.is_empty()
    except Exception as e:
        raise BitstreamError(f"corrupt {what} at its end: {e}") from e
    if not np.array_equal(got, marker):
        raise BitstreamError(f"corrupt {what}: end marker mismatch (wrong, truncated or extra data)")
    if not empty:
        raise BitstreamError(f"corrupt {what}: data left over after the last symbol")


class FrameEncoder:
    """Entropy-codes the parts of one frame into one byte string.

    Parameters
    ----------
    tables : np.ndarray
        Integer PMF table (rows, 2*M + 1), see `pmf_table`.
    mode : str
        "ans" or "rice".

    Call `add` once per part in decode order, then `finish`.
    """

    def __init__(self, tables, mode: str = "ans"):
        self._tables, self._m, self._precision = _check_tables(tables)
        self.mode = _check_mode(mode)
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._data: bytes | None = None

    def add(self, values, rows) -> None:
        """Queue one part: integer `values` (any shape) coded with table rows `rows` (broadcastable to it).

        Raises
        ------
        ValueError
            If a value lies outside +-max_symbol (the caller clamps), a row is out of range, or the
            encoder is already finished.
        """
        if self._data is not None:
            raise ValueError("FrameEncoder.add after finish()")
        values = _as_int_array(values, "values")
        rows = _as_int_array(rows, "rows")
        try:
            rows = np.broadcast_to(rows, values.shape)
        except ValueError as e:
            raise ValueError(f"rows of shape {rows.shape} do not broadcast to values of shape {values.shape}") from e
        if values.size:
            lo, hi = int(values.min()), int(values.max())
            if lo < -self._m or hi > self._m:
                raise ValueError(f"values must lie in [-{self._m}, {self._m}] (clamp before coding), "
                                 f"got range [{lo}, {hi}]")
        _check_rows(rows, self._tables.shape[0])
        self._parts.append((values.ravel().copy(), rows.ravel().copy()))

    def finish(self) -> bytes:
        """The coded frame (ANS: little-endian u32 words; Rice: MSB-first bits, zero-padded)."""
        if self._data is None:
            self._data = self._finish_ans() if self.mode == "ans" else self._finish_rice()
            self._parts = []
        return self._data

    def _finish_ans(self) -> bytes:
        models = _Models(self._tables, self._precision)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(_ANS_END_MARKER, constriction.stream.model.Uniform(256))
        for values, rows in reversed(self._parts):
            order, distinct, bounds = _group_by_row(rows)
            symbols = (values[order] + self._m).astype(np.int32)
            for j in range(distinct.size - 1, -1, -1):
                coder.encode_reverse(symbols[bounds[j]:bounds[j + 1]], models[int(distinct[j])])
        return coder.get_compressed().astype("<u4").tobytes()

    def _finish_rice(self) -> bytes:
        if not self._parts:
            return b""
        values = np.concatenate([v for v, _ in self._parts])
        rows = np.concatenate([r for _, r in self._parts])
        if values.size == 0:
            return b""
        e = _rice_escape_bits(self._m)
        k = rice_parameters(self._tables)[rows]
        u = np.where(values >= 0, 2 * values, -2 * values - 1)
        q = u >> k
        esc = q >= ESCAPE_RUN
        qc = np.minimum(q, ESCAPE_RUN)
        length = np.where(esc, ESCAPE_RUN + e, qc + 1 + k)
        code = np.where(esc, (((1 << ESCAPE_RUN) - 1) << e) | u,
                        (((np.int64(1) << qc) - 1) << (k + 1)) | (u & ((np.int64(1) << k) - 1)))
        ends = np.cumsum(length)
        starts = ends - length
        bits = np.zeros(int(ends[-1]), dtype=np.uint8)
        for j in range(int(length.max())):          # bit j (MSB first) of every codeword longer than j
            sel = np.flatnonzero(length > j)
            bits[starts[sel] + j] = (code[sel] >> (length[sel] - 1 - j)) & 1
        return np.packbits(bits).tobytes()


class FrameDecoder:
    """Decodes the parts of one frame written by `FrameEncoder`, in the same order.

    Parameters
    ----------
    data : bytes
        The coded frame.
    tables : np.ndarray
        The same integer table the encoder used.
    mode : str
        "ans" or "rice".

    Raises
    ------
    BitstreamError
        From the constructor, `read` or `close` whenever the data is malformed, truncated or has leftovers.
    """

    def __init__(self, data: bytes, tables, mode: str = "ans"):
        self._tables, self._m, self._precision = _check_tables(tables)
        self.mode = _check_mode(mode)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"FrameDecoder needs bytes, got {type(data).__name__}")
        data = bytes(data)
        self._closed = False
        if self.mode == "ans":
            if len(data) % 4:
                raise BitstreamError(f"ANS payload of {len(data)} bytes is not a whole number of 32-bit words")
            words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
            try:
                self._coder = constriction.stream.stack.AnsCoder(words)
            except Exception as e:
                raise BitstreamError(f"invalid ANS payload: {e}") from e
            self._models = _Models(self._tables, self._precision)
        else:
            self._bytes = np.frombuffer(data, dtype=np.uint8)
            self._nbits = 8 * len(data)
            self._pos = 0
            self._ks = rice_parameters(self._tables)
            self._e = _rice_escape_bits(self._m)
            self._chunk = None          # (base bit, last start position allowed, run list, window list)

    def read(self, rows, shape=None) -> np.ndarray:
        """Decode the next part: one value (int64) per entry of `rows` (broadcast to `shape` if given)."""
        if self._closed:
            raise ValueError("FrameDecoder.read after close()")
        rows = _as_int_array(rows, "rows")
        if shape is not None:
            try:
                rows = np.broadcast_to(rows, tuple(shape))
            except ValueError as e:
                raise ValueError(f"rows of shape {rows.shape} do not broadcast to {tuple(shape)}") from e
        _check_rows(rows, self._tables.shape[0])
        flat = rows.ravel()
        try:
            out = self._read_ans(flat) if self.mode == "ans" else self._read_rice(flat)
        except BitstreamError:
            raise
        except Exception as e:
            raise BitstreamError(f"corrupt {self.mode} payload: {type(e).__name__}: {e}") from e
        return out.reshape(rows.shape)

    def close(self) -> None:
        """Check that the data was consumed exactly (else BitstreamError); the decoder is then unusable."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "ans":
            check_ans_end(self._coder, _ANS_END_MARKER, "ans payload")
        else:
            left = self._nbits - self._pos
            if left < 0:
                raise BitstreamError("truncated rice payload")
            if left >= 8:
                raise BitstreamError(f"corrupt rice payload: {left} bits left over after the last part")
            last = int(self._bytes[-1]) if left else 0
            if last & ((1 << left) - 1):
                raise BitstreamError("corrupt rice payload: padding bits are not zero")

    def _read_ans(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(rows.size, dtype=np.int64)
        if rows.size == 0:
            return out
        order, distinct, bounds = _group_by_row(rows)
        for j in range(distinct.size):
            n = int(bounds[j + 1] - bounds[j])
            out[order[bounds[j]:bounds[j + 1]]] = self._coder.decode(self._models[int(distinct[j])], n)
        return out - self._m

    def _prepare_chunk(self, pos: int):
        """Run lengths (leading ones, capped at 16) and E-bit windows for the bits from `pos` on."""
        e = self._e
        base = pos - pos % 8
        first = base // 8
        nbytes = min(_RICE_CHUNK_BYTES, self._bytes.size - first)
        final = first + nbytes >= self._bytes.size
        real = np.unpackbits(self._bytes[first:first + nbytes])
        guard = ESCAPE_RUN + e + 8
        bits = np.concatenate([real, np.zeros(guard, dtype=np.uint8)])
        r = real.size
        zeros = np.flatnonzero(bits == 0)
        starts = np.arange(r + 1)
        run = np.minimum(zeros[np.searchsorted(zeros, starts)] - starts, ESCAPE_RUN)
        width = r + ESCAPE_RUN + 1
        win = np.zeros(width, dtype=np.int64)
        for j in range(e):
            win = (win << 1) | bits[j:j + width]
        # a symbol starting at relative position <= hi only reads bits held in this chunk (or, in the final
        # chunk, the zero guard, which leaves the position past the real end and is caught as truncation)
        hi = r if final else r - (ESCAPE_RUN + e)
        self._chunk = (base, hi, final, run.tolist(), win.tolist())

    def _read_rice(self, rows: np.ndarray) -> np.ndarray:
        n = rows.size
        if n == 0:
            return np.empty(0, dtype=np.int64)
        ks_arr = self._ks[rows]
        ks = ks_arr.tolist()
        e = self._e
        esc_flag, esc_run = _ESC_FLAG, ESCAPE_RUN
        out: list[int] = []
        append = out.append
        i = 0
        pos = self._pos
        while i < n:
            if pos >= self._nbits:
                raise BitstreamError(f"truncated rice payload: {n - i} of {n} symbols of this part missing")
            if self._chunk is None or not 0 <= pos - self._chunk[0] <= self._chunk[1]:
                self._prepare_chunk(pos)
            base, hi, final, run, win = self._chunk
            p = pos - base
            while i < n and p <= hi:
                k = ks[i]
                q = run[p]
                if q < esc_run:
                    p += q + 1
                    append((q << k) | (win[p] >> (e - k)))
                    p += k
                else:
                    p += esc_run
                    append(win[p] | esc_flag)
                    p += e
                i += 1
            pos = base + p
            if final and pos > self._nbits:
                raise BitstreamError("truncated rice payload: the last codeword runs past the end")
        self._pos = pos
        raw = np.array(out, dtype=np.int64)
        esc = raw >= esc_flag
        u = raw & (esc_flag - 1)
        if np.any(u > 2 * self._m):
            raise BitstreamError(f"corrupt rice payload: a codeword decodes beyond +-{self._m}")
        if np.any(esc & ((u >> ks_arr) < ESCAPE_RUN)):
            raise BitstreamError("corrupt rice payload: escape code for a value that has a short code")
        return np.where(u & 1, -((u + 1) >> 1), u >> 1)
