"""The Sheet env's backend: a spreadsheet engine over real .xlsx files (openpyxl).

The original drove a Google Sheets copy through gspread. Here each episode's workbook is an .xlsx
file in a temporary directory: loaded with openpyxl at the start, written back after every change,
deleted at the end. In memory a sheet is a grid of cells (value, number format, note) with merged
ranges and frozen rows/columns, and this module implements what the tools need with Google Sheets'
semantics as gspread exposed them:

- values: numbers, text, or formulas ("=SUM(C2:G2)") that are computed when read; a number shows
  through its cell's number format ("0.00" shows 8.5 as "8.50"), as get_all_values shows it;
- formulas: + - * / and parentheses over numbers and cell references, and the functions the tools
  offer: SUM, AVERAGE, COUNT, MAX, MIN, MINUS, PRODUCT (ranges skip text and blanks). Inserting or
  deleting rows and columns shifts the references of every formula (a reference to a deleted cell
  becomes #REF!); sorting moves a formula with its row, like a copy and paste;
- merged cells show the top-left cell's value in every cell of the range;
- sorting orders the rows below the frozen ones: numbers before text, blanks last.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

A1 = re.compile(r"^\$?([A-Z]{1,3})\$?([1-9][0-9]*)$")
_REF = re.compile(r"(?<![A-Za-z_])(\$?)([A-Z]{1,3})(\$?)([1-9][0-9]*)(?![0-9(A-Za-z_])")
_RANGE_REF = re.compile(
    r"(?<![A-Za-z_])(\$?[A-Z]{1,3}\$?[1-9][0-9]*):(\$?[A-Z]{1,3}\$?[1-9][0-9]*)(?![0-9(A-Za-z_])"
)
FUNCTIONS = ("SUM", "AVERAGE", "COUNT", "MAX", "MIN", "MINUS", "PRODUCT")
_KEEPS_FORMAT = re.compile(r"=\s*(SUM|AVERAGE|MIN|MAX|MINUS)\s*\([^()]*\)\s*$", re.IGNORECASE)
MAX_ROWS, MAX_COLS = 1000, 26


class SheetError(Exception):
    """An operation the spreadsheet refuses; the message says why."""


class FormulaError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- addresses -----------------------------------------------------------------------------------
def col_letter(col: int) -> str:
    out = ""
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def address(row: int, col: int) -> str:
    return f"{col_letter(col)}{row}"


def parse_a1(text: str) -> tuple[int, int]:
    m = A1.match(text.strip().upper()) if isinstance(text, str) else None
    if not m:
        raise SheetError(f"{text!r} is not a cell position in A1 notation (like 'B3').")
    row, col = int(m.group(2)), col_number(m.group(1))
    if row > MAX_ROWS or col > MAX_COLS:
        raise SheetError(
            f"{text} is outside the sheet ({MAX_ROWS} rows, columns A to {col_letter(MAX_COLS)})."
        )
    return row, col


def to_value(raw: Any) -> Any:
    """A value as written by a tool: numbers stay numbers, numeric text becomes a number (as the
    original converted it), "=..." is a formula, anything else is text."""
    if isinstance(raw, bool) or raw is None:
        return raw
    if isinstance(raw, int | float):
        return float(raw) if math.isfinite(raw) else str(raw)
    text = str(raw)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


# --- number formats ------------------------------------------------------------------------------
def general(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = f"{v:.10g}"
    if "e" in text:
        return text
    return text.rstrip("0").rstrip(".") if "." in text else text


def show(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, FormulaError):
        return value.code
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        v = float(value)
        m = re.fullmatch(r"(#,##)?0(?:\.(0+))?(%?)", fmt)
        if not m:
            return general(v)
        decimals = len(m.group(2) or "")
        if m.group(3):
            v *= 100
        body = f"{v:,.{decimals}f}" if m.group(1) else f"{v:.{decimals}f}"
        if body.startswith("-") and float(body.replace(",", "").rstrip("%")) == 0:
            body = body[1:]
        return body + m.group(3)
    return str(value)


# --- the sheet -----------------------------------------------------------------------------------
@dataclass
class Cell:
    value: Any = None
    fmt: str = "General"
    note: str = ""

    def empty(self) -> bool:
        return self.value is None or self.value == ""


@dataclass
class Sheet:
    name: str
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # r1, c1, r2, c2
    frozen_rows: int = 0
    frozen_cols: int = 0
    _memo: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False, compare=False)

    def copy(self) -> Sheet:
        return Sheet(
            self.name,
            {k: replace(c) for k, c in self.cells.items()},
            list(self.merges),
            self.frozen_rows,
            self.frozen_cols,
        )

    # --- reading ---------------------------------------------------------------------------------
    def cell(self, row: int, col: int) -> Cell:
        return self.cells.get((row, col)) or Cell()

    def merge_of(self, row: int, col: int) -> tuple[int, int, int, int] | None:
        for m in self.merges:
            if m[0] <= row <= m[2] and m[1] <= col <= m[3]:
                return m
        return None

    def extent(self) -> tuple[int, int]:
        """(last row, last column) holding a value."""
        rows = cols = 0
        for (r, c), cell in self.cells.items():
            if not cell.empty():
                rows, cols = max(rows, r), max(cols, c)
        for m in self.merges:
            if not self.cell(m[0], m[1]).empty():
                rows, cols = max(rows, m[2]), max(cols, m[3])
        return rows, cols

    def computed(self, row: int, col: int, stack: tuple[tuple[int, int], ...] = ()) -> Any:
        """The cell's value, formulas computed (a FormulaError for #REF! and the like). Results are
        kept until the next change, so formulas over formulas are computed once each."""
        m = self.merge_of(row, col)
        if m is not None:
            row, col = m[0], m[1]
        v = self.cell(row, col).value
        if not (isinstance(v, str) and v.startswith("=")):
            return v
        if (row, col) in self._memo:
            return self._memo[(row, col)]
        if (row, col) in stack:
            return FormulaError("#REF!")  # a cycle: every cell on it shows #REF!
        if len(stack) > 64:
            return FormulaError("#REF!")  # too deep to follow; not remembered
        try:
            value = _Formula(self, v[1:], (*stack, (row, col))).run()
        except FormulaError as exc:
            value = exc
        self._memo[(row, col)] = value
        return value

    def changed(self) -> None:
        """Forget computed formula values (every change to cells calls this)."""
        self._memo.clear()

    def display(self, row: int, col: int) -> str:
        m = self.merge_of(row, col)
        if m is not None:
            row, col = m[0], m[1]
        return show(self.computed(row, col), self.shown_format(row, col))

    def shown_format(self, row: int, col: int) -> str:
        """The cell's number format. A cell left at the automatic format that holds just a SUM,
        AVERAGE, MIN, MAX or MINUS (what update_cell_by_formula writes) shows the result with the
        format of the first cell referenced, as Google Sheets does (=SUM(C2:G2) over "0.0" cells
        shows "444.0"); PRODUCT and COUNT do not (the original's gold sheets show a PRODUCT of
        "0.00" cells as "184.8")."""
        cell = self.cell(row, col)
        v = cell.value
        if cell.fmt != "General" or not isinstance(v, str) or not _KEEPS_FORMAT.match(v):
            return cell.fmt
        ref = _REF.search(v)
        return self.cell(int(ref.group(4)), col_number(ref.group(2))).fmt if ref else cell.fmt

    def values(self, r1: int, c1: int, r2: int, c2: int) -> list[list[str]]:
        return [[self.display(r, c) for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]

    def all_values(self) -> list[list[str]]:
        rows, cols = self.extent()
        return self.values(1, 1, rows, cols) if rows else []

    # --- writing ---------------------------------------------------------------------------------
    def set(self, row: int, col: int, value: Any) -> None:
        self.changed()
        cell = self.cells.setdefault((row, col), Cell())
        cell.value = to_value(value)

    def set_note(self, row: int, col: int, text: str) -> None:
        self.cells.setdefault((row, col), Cell()).note = text

    def merge(self, r1: int, c1: int, r2: int, c2: int) -> None:
        if r2 < r1 or c2 < c1:
            raise SheetError("the end position must be below and to the right of the start position.")
        if (r1, c1) == (r2, c2):
            return
        self.changed()
        if any(not (m[2] < r1 or m[0] > r2 or m[3] < c1 or m[1] > c2) for m in self.merges):
            raise SheetError("the range overlaps cells that are already merged.")
        for (r, c), cell in self.cells.items():
            if r1 <= r <= r2 and c1 <= c <= c2 and (r, c) != (r1, c1):
                cell.value = None
        self.merges.append((r1, c1, r2, c2))

    def insert_rows(self, at: int, rows: list[list[Any]]) -> None:
        n = len(rows)
        self._remap(lambda r: r + n if r >= at else r, None, axis=0)
        for i, values in enumerate(rows):
            for j, v in enumerate(values):
                self.set(at + i, j + 1, v)
            for j in range(1, self.extent()[1] + 1):
                above = self.cells.get((at - 1, j)) if at > 1 else self.cells.get((at + n, j))
                cell = self.cells.setdefault((at + i, j), Cell())
                if above is not None and cell.fmt == "General":
                    cell.fmt = above.fmt

    def insert_cols(self, at: int, cols: list[list[Any]]) -> None:
        n = len(cols)
        if self.extent()[1] + n > MAX_COLS:
            raise SheetError(f"the sheet can have at most {MAX_COLS} columns.")
        self._remap(None, lambda c: c + n if c >= at else c, axis=1)
        for j, values in enumerate(cols):
            for i, v in enumerate(values):
                self.set(i + 1, at + j, v)

    def delete_rows(self, indexes: list[int]) -> None:
        gone = set(indexes)
        self._remap(lambda r: None if r in gone else r - sum(1 for g in gone if g < r), None, axis=0)

    def delete_cols(self, indexes: list[int]) -> None:
        gone = set(indexes)
        self._remap(None, lambda c: None if c in gone else c - sum(1 for g in gone if g < c), axis=1)

    def sort(self, col: int, descending: bool) -> None:
        rows, _ = self.extent()
        first = self.frozen_rows + 1
        if rows < first:
            return
        if any(m[2] >= first and m[0] <= rows for m in self.merges):
            raise SheetError("a range containing merged cells cannot be sorted.")
        order = list(range(first, rows + 1))
        keyed = [(self.computed(r, col), r) for r in order]
        blanks = [r for v, r in keyed if v is None or v == ""]
        filled = [(v, r) for v, r in keyed if not (v is None or v == "")]

        def key(item: tuple[Any, int]) -> tuple[int, Any]:
            v = item[0]
            if isinstance(v, int | float) and not isinstance(v, bool):
                return (0, v)
            return (1, str(v).casefold())

        numbers = sorted((x for x in filled if key(x)[0] == 0), key=key)
        texts = sorted((x for x in filled if key(x)[0] == 1), key=key)
        if descending:
            numbers.sort(key=key, reverse=True)
            texts.sort(key=key, reverse=True)
            ranked = texts + numbers
        else:
            ranked = numbers + texts
        new_order = [r for _, r in ranked] + blanks
        self.changed()
        moved: dict[tuple[int, int], Cell] = {}
        for (r, c), cell in self.cells.items():
            if first <= r <= rows:
                dest = first + new_order.index(r)
                moved[(dest, c)] = _shift_cell(cell, dest - r, 0)
            else:
                moved[(r, c)] = cell
        self.cells = moved

    def _remap(
        self,
        row_map: Callable[[int], int | None] | None,
        col_map: Callable[[int], int | None] | None,
        axis: int,
    ) -> None:
        """Move every cell and merged range by the row or column mapping, and rewrite every
        formula's references with it (None: the row or column is gone)."""
        self.changed()
        rmap = row_map or (lambda r: r)
        cmap = col_map or (lambda c: c)
        moved: dict[tuple[int, int], Cell] = {}
        for (r, c), cell in self.cells.items():
            nr, nc = rmap(r), cmap(c)
            if nr is None or nc is None:
                continue
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell = replace(cell, value=_rewrite_refs(cell.value, rmap, cmap))
            moved[(nr, nc)] = cell
        self.cells = moved
        merges = []
        for r1, c1, r2, c2 in self.merges:
            corners = (rmap(r1), cmap(c1), rmap(r2), cmap(c2))
            if None not in corners:
                merges.append(corners)  # type: ignore[arg-type]
        self.merges = merges  # type: ignore[assignment]


def _shift_cell(cell: Cell, drow: int, dcol: int) -> Cell:
    if (drow == 0 and dcol == 0) or not (isinstance(cell.value, str) and cell.value.startswith("=")):
        return cell
    return replace(
        cell,
        value=_rewrite_refs(cell.value, lambda r: r + drow, lambda c: c + dcol, relative_only=True),
    )


def _rewrite_refs(
    formula: str,
    rmap: Callable[[int], int | None],
    cmap: Callable[[int], int | None],
    relative_only: bool = False,
) -> str:
    """Apply a row/column mapping to a formula's references. A range whose end rows or columns
    are deleted shrinks to the ones left; a single reference to a deleted cell becomes #REF!."""

    def moved(m: re.Match[str], end: int) -> tuple[int, int] | None:
        """The new (row, col) of a reference; `end` -1/+1 says it is a range's start/end corner
        (search inwards for a surviving row or column), 0 a single cell."""
        col_abs, letters, row_abs, digits = m.groups()
        row, col = int(digits), col_number(letters)
        if relative_only:
            new_row = row if row_abs else rmap(row)
            new_col = col if col_abs else cmap(col)
            return (new_row, new_col) if new_row and new_col and new_row > 0 and new_col > 0 else None
        new_row, new_col = rmap(row), cmap(col)
        step = -end
        r, c = row, col
        while end and new_row is None and 0 < r <= MAX_ROWS:
            r += step
            new_row = rmap(r)
        while end and new_col is None and 0 < c <= MAX_COLS:
            c += step
            new_col = cmap(c)
        return (new_row, new_col) if new_row and new_col else None

    def text(m: re.Match[str], where: tuple[int, int]) -> str:
        col_abs, _, row_abs, _ = m.groups()
        return f"{col_abs}{col_letter(where[1])}{row_abs}{where[0]}"

    def sub_range(m: re.Match[str]) -> str:
        a, b = _REF.fullmatch(m.group(1)), _REF.fullmatch(m.group(2))
        assert a is not None and b is not None
        first, last = moved(a, -1), moved(b, +1)
        if first is None or last is None or first[0] > last[0] or first[1] > last[1]:
            return "#REF!"
        return f"{text(a, first)}:{text(b, last)}"

    def sub_single(m: re.Match[str]) -> str:
        where = moved(m, 0)
        return "#REF!" if where is None else text(m, where)

    out = []
    pos = 0
    for m in _RANGE_REF.finditer(formula):
        out.append(_REF.sub(sub_single, formula[pos : m.start()]))
        out.append(sub_range(m))
        pos = m.end()
    out.append(_REF.sub(sub_single, formula[pos:]))
    return "".join(out)


# --- formulas ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*|\.\d+)|(\$?[A-Z]{1,3}\$?[1-9][0-9]*)|([A-Z]+)\s*\(|(#REF!)|(.))")


class _Formula:
    """A recursive-descent evaluator for the formula language described in the module doc."""

    def __init__(self, sheet: Sheet, text: str, stack: tuple[tuple[int, int], ...]) -> None:
        self.sheet = sheet
        self.stack = stack
        self.tokens: list[tuple[str, str]] = []
        for m in _TOKEN.finditer(text.upper()):
            number, ref, func, bad_ref, other = m.groups()
            if number:
                self.tokens.append(("num", number))
            elif ref:
                self.tokens.append(("ref", ref.replace("$", "")))
            elif func:
                self.tokens.append(("func", func))
            elif bad_ref:
                raise FormulaError("#REF!")
            elif other and not other.isspace():
                self.tokens.append(("op", other))
        self.i = 0

    def run(self) -> Any:
        value = self.expr()
        if self.i != len(self.tokens):
            raise FormulaError("#ERROR!")
        return value

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, op: str) -> bool:
        if self.peek() == ("op", op):
            self.i += 1
            return True
        return False

    def expr(self) -> Any:
        value = self.term()
        while (t := self.peek()) and t[0] == "op" and t[1] in "+-":
            self.i += 1
            right = self.term()
            value = _num(value) + _num(right) if t[1] == "+" else _num(value) - _num(right)
        return value

    def term(self) -> Any:
        value = self.factor()
        while (t := self.peek()) and t[0] == "op" and t[1] in "*/":
            self.i += 1
            right = _num(self.factor())
            if t[1] == "*":
                value = _num(value) * right
            else:
                if right == 0:
                    raise FormulaError("#DIV/0!")
                value = _num(value) / right
        return value

    def factor(self) -> Any:
        t = self.peek()
        if t is None:
            raise FormulaError("#ERROR!")
        self.i += 1
        kind, text = t
        if kind == "num":
            return float(text)
        if kind == "ref":
            r, c = _ref(text)
            value = self.sheet.computed(r, c, self.stack)
            if isinstance(value, FormulaError):
                raise value
            return value
        if kind == "func":
            return self.call(text)
        if t == ("op", "("):
            value = self.expr()
            if not self.take(")"):
                raise FormulaError("#ERROR!")
            return value
        if t == ("op", "-"):
            return -_num(self.factor())
        if t == ("op", "+"):
            return _num(self.factor())
        raise FormulaError("#ERROR!")

    def call(self, name: str) -> Any:
        if name not in FUNCTIONS:
            raise FormulaError("#NAME?")
        args: list[list[Any]] = []
        if not self.take(")"):
            while True:
                args.append(self.argument())
                if self.take(")"):
                    break
                if not self.take(","):
                    raise FormulaError("#ERROR!")
        values = [v for group in args for v in group]
        numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if name == "SUM":
            return math.fsum(numbers)
        if name == "COUNT":
            return float(len(numbers))
        if name == "PRODUCT":
            return math.prod(numbers) if numbers else 0.0
        if name == "AVERAGE":
            if not numbers:
                raise FormulaError("#DIV/0!")
            return math.fsum(numbers) / len(numbers)
        if name in ("MAX", "MIN"):
            return (max if name == "MAX" else min)(numbers) if numbers else 0.0
        if len(args) != 2 or len(values) != 2:
            raise FormulaError("#N/A")
        return _num(values[0]) - _num(values[1])

    def argument(self) -> list[Any]:
        """A range (every cell's value) or one expression."""
        t = self.peek()
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
        if t and t[0] == "ref" and nxt == ("op", ":"):
            self.i += 2
            end = self.peek()
            if not end or end[0] != "ref":
                raise FormulaError("#ERROR!")
            self.i += 1
            (r1, c1), (r2, c2) = _ref(t[1]), _ref(end[1])
            out = []
            for r in range(min(r1, r2), max(r1, r2) + 1):
                for c in range(min(c1, c2), max(c1, c2) + 1):
                    v = self.sheet.computed(r, c, self.stack)
                    if isinstance(v, FormulaError):
                        raise v
                    out.append(v)
            return out
        return [self.expr()]


def _ref(text: str) -> tuple[int, int]:
    try:
        return parse_a1(text)
    except SheetError:
        raise FormulaError("#REF!") from None


def _num(v: Any) -> float:
    if v is None or v == "":
        return 0.0
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise FormulaError("#VALUE!") from None


def formula_result(sheet: Sheet, formula: str) -> str:
    """A formula computed against the sheet, shown as a General number (get_value_by_formula)."""
    try:
        return show(_Formula(sheet, formula.lstrip("="), ()).run(), "General")
    except FormulaError as exc:
        return exc.code


# --- the workbook and its file -------------------------------------------------------------------
class Workbook:
    def __init__(self, sheets: list[Sheet]) -> None:
        self.sheets: dict[str, Sheet] = {s.name: s for s in sheets}

    def copy(self) -> Workbook:
        return Workbook([s.copy() for s in self.sheets.values()])

    def save(self, path: str) -> None:
        from openpyxl import Workbook as XLWorkbook
        from openpyxl.comments import Comment

        wb = XLWorkbook()
        wb.remove(wb.active)
        for s in self.sheets.values():
            ws = wb.create_sheet(s.name)
            for (r, c), cell in sorted(s.cells.items()):
                if cell.empty() and not cell.note and cell.fmt == "General":
                    continue
                x = ws.cell(row=r, column=c)
                x.value = cell.value
                x.number_format = cell.fmt
                if cell.note:
                    x.comment = Comment(cell.note, "agentgym")
            for r1, c1, r2, c2 in s.merges:
                ws.merge_cells(start_row=r1, start_column=c1, end_row=r2, end_column=c2)
            if s.frozen_rows or s.frozen_cols:
                ws.freeze_panes = address(s.frozen_rows + 1, s.frozen_cols + 1)
        wb.save(path)

    @classmethod
    def load(cls, path: str) -> Workbook:
        from openpyxl import load_workbook
        from openpyxl.cell.cell import MergedCell

        wb = load_workbook(path)
        sheets = []
        for ws in wb.worksheets:
            s = Sheet(ws.title)
            # Merged ranges first: openpyxl drops the values of a range's hidden cells.
            for rng in ws.merged_cells.ranges:
                s.merges.append((rng.min_row, rng.min_col, rng.max_row, rng.max_col))
            for row in ws.iter_rows():
                for x in row:
                    if isinstance(x, MergedCell):
                        continue
                    note = x.comment.text if x.comment is not None else ""
                    if x.value is None and not note and x.number_format == "General":
                        continue
                    value = x.value
                    if isinstance(value, int) and not isinstance(value, bool):
                        value = float(value)
                    s.cells[(x.row, x.column)] = Cell(value, x.number_format, note)
            if ws.freeze_panes:
                r, c = parse_a1(ws.freeze_panes)
                s.frozen_rows, s.frozen_cols = r - 1, c - 1
            sheets.append(s)
        return cls(sheets)
