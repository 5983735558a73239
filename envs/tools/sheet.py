"""Sheet: edit a spreadsheet to reach a goal (AgentBoard's tool-operation Sheet, served by AgentGym
as `sheet`; max 15 rounds).

Tools, names and arguments as the original's (which drove Google Sheets through gspread):
open_sheet, del_sheet, freeze_data, get_A1_annotation, insert_cols, insert_rows,
delete_batch_data, update_cell, update_cell_by_formula, update_range, sort_sheet_by_col,
merge_cells, update_note, get_all_values, get_range_values, get_cell_value, get_value_by_formula,
filter_cells, get_note, and finish() (no answer: the sheet is the result). A sheet must be opened
before it is used; a sort leaves the frozen rows in place, so freeze the header first. Each episode
works on its own .xlsx file (sheet_world.py).

Reward: the original scored the share of cells of the sheet that equal the gold sheet's. We score
the same match, over the union of both sheets' extents (so deleting rows cannot help), as progress
from where the sheet started: (match - initial match) / (1 - initial match), 1 when the sheet
equals the gold sheet. `info["match"]` carries the raw share.

Tasks: ids 0-19 are the test set (the original's size: one task per template), 20-499 a training
set. Each task generates its sheet data and is solved with the tools on a scratch copy
(planner.py); the gold sheet is the result.

With `sheet.data` (the original's sheet.jsonl) and the original's workbook (`sheet.workbook`, the
checkout's "Test Sheet-For Copy.xlsx", the file its Google Sheet was copied from), task id N is
the original's task N on the original's sheets: the goal, the gold sheet and the reference action
path come from the file. Under the profile the score is the original's: the share of equal cells
over the rows and columns the open sheet and the gold sheet share, best over the episode.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from agentgym.envs.registry import register
from agentgym.envs.tools import original
from agentgym.envs.tools import sheet_world as sw
from agentgym.envs.tools.action import ToolCall
from agentgym.envs.tools.base import ToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.original import OriginalData, OriginalDataError, OriginalTask
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.toolkit import Param, validate

TEST_TASKS = 20
TASKS = 500
# Where an AgentGym checkout keeps the workbook its Google Sheet was copied from.
WORKBOOK_IN_CHECKOUT = "toolusage/utils/sheet/Test Sheet-For Copy.xlsx"
OPERATORS = ("SUM", "AVERAGE", "COUNT", "MAX", "MIN", "MINUS", "PRODUCT")
_SINGLE_A1 = re.compile(r"^[A-Z][0-9]+$")  # the original's formula tools took one-letter columns

_INTRO = """\
You are an agent that edits spreadsheets by calling tools. A workbook holds several sheets; the \
goal names the sheet to work on. Rows and columns are numbered from 1, and cells are named in A1 \
notation (column letter and row number, like "B3")."""

_NOTES = """\
Open the sheet named in the goal first, and look at its content with get_all_values. Sorting \
leaves frozen rows in place: freeze the header row (freeze_data rows 1) before you sort. When the \
sheet is as the goal asks, call finish."""

_EXAMPLE = """\
Goal: In "Sheet7", raise the price of every Fruits product by 1, then sort the table by "Price" in descending order.
Thought:
I open the sheet named in the goal.

Action:
open_sheet with Action Input: {"name": "Sheet7"}
Observation: You have opened the sheet Sheet7.
Thought:
Let me look at the data.

Action:
get_all_values with Action Input: {}
Observation: [['Product', 'Category', 'Price'], ['apple', 'Fruits', '1.20'], ['beef', 'Meat', '8.50'], ['banana', 'Fruits', '0.50']]
Thought:
The fruit prices are in C2 and C4; the new prices are 2.20 and 1.50.

Action:
update_cell with Action Input: {"position": "C2", "value": 2.2}
Observation: [['Product', 'Category', 'Price'], ['apple', 'Fruits', '2.20'], ['beef', 'Meat', '8.50'], ['banana', 'Fruits', '0.50']]
Thought:
Now the banana price.

Action:
update_cell with Action Input: {"position": "C4", "value": 1.5}
Observation: [['Product', 'Category', 'Price'], ['apple', 'Fruits', '2.20'], ['beef', 'Meat', '8.50'], ['banana', 'Fruits', '1.50']]
Thought:
Before sorting I freeze the header row so that it stays on top.

Action:
freeze_data with Action Input: {"dimension": "rows", "num": 1}
Observation: The first 1 rows are frozen.
Thought:
Price is column 3.

Action:
sort_sheet_by_col with Action Input: {"col_num": 3, "order": "des"}
Observation: [['Product', 'Category', 'Price'], ['beef', 'Meat', '8.50'], ['apple', 'Fruits', '2.20'], ['banana', 'Fruits', '1.50']]
Thought:
The sheet is done.

Action:
finish with Action Input: {}
Observation: [['Product', 'Category', 'Price'], ['beef', 'Meat', '8.50'], ['apple', 'Fruits', '2.20'], ['banana', 'Fruits', '1.50']]"""

_POS = Param("position", "string", "The cell position in A1 notation.")
_START = Param("start_position", "string", "The first cell of the range (top left), in A1 notation.")
_END = Param("end_position", "string", "The last cell of the range (bottom right), in A1 notation.")
_VALUES = Param("values_list", "array", "The values, a list of lists.", type_label="array[array[Any]]")
_OPERATOR = Param("operator", "string", f"The function to apply, one of {list(OPERATORS)}.")
_LIST = Param(
    "position_list",
    "array",
    "A list of cell positions in A1 notation.",
    required=False,
    type_label="array[string]",
)
_RANGE_START = Param(
    "start_position",
    "string",
    "The first cell of the range (use this and end_position, or position_list).",
    required=False,
)
_RANGE_END = Param("end_position", "string", "The last cell of the range.", required=False)


def _grid_match(current: list[list[str]], gold: list[list[str]]) -> float:
    rows = max(len(current), len(gold))
    cols = max([len(r) for r in current] + [len(r) for r in gold] + [0])
    if rows == 0 or cols == 0:
        return 1.0

    def at(grid: list[list[str]], r: int, c: int) -> str:
        return grid[r][c] if r < len(grid) and c < len(grid[r]) else ""

    same = sum(1 for r in range(rows) for c in range(cols) if at(current, r, c) == at(gold, r, c))
    return same / (rows * cols)


@register
class SheetEnv(ToolEnv):
    name = "sheet"
    description = (
        "Edit spreadsheets with 20 gspread-style tools (AgentBoard tool-operation Sheet); real .xlsx files."
    )
    intro = _INTRO
    notes = _NOTES
    example = _EXAMPLE
    max_rounds = 15
    task_count = TASKS
    splits = {"test": [range(0, TEST_TASKS)], "train": [range(TEST_TASKS, TASKS)]}
    success_threshold = 1.0
    builtin_task_set = "built-in sheet tasks on generated sheets; not the original's"
    settings_help = {
        **ToolEnv.settings_help,
        "workbook": "with data: the original's workbook, AgentGym's agentenv-tool/Toolusage/"
        f"{WORKBOOK_IN_CHECKOUT} (found there when data is in that checkout)",
    }
    # The original's workbook, loaded by `configure` with `data`.
    original_book: ClassVar[sw.Workbook | None] = None

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        if data is None:
            if settings.get("workbook"):
                raise ValueError("sheet.workbook only applies with sheet.data")
            cls.original_book = None
            return
        path = settings.get("workbook") or original.sibling(settings["data"], WORKBOOK_IN_CHECKOUT)
        if not path:
            raise OriginalDataError(
                "sheet.data needs the original's workbook: set sheet.workbook to AgentGym's "
                f"agentenv-tool/Toolusage/{WORKBOOK_IN_CHECKOUT}"
            )
        path = Path(path).expanduser()
        try:
            book = sw.Workbook.load(str(path))
        except Exception as exc:  # openpyxl raises many kinds for a file that is not .xlsx
            raise OriginalDataError(
                f"sheet.workbook: {path}: cannot read it as an .xlsx workbook: {exc}"
            ) from None
        for task in data.tasks:
            name = original.sheet_name(task.goal)
            if name not in book.sheets:
                raise OriginalDataError(f"{task.path}:{task.line}: the workbook {path} has no sheet {name}")
        cls.original_book = book

    @classmethod
    def world_is_original(cls) -> bool:
        return True

    def __init__(self) -> None:
        super().__init__()
        self.book = sw.Workbook([])
        self.current: str | None = None
        self.path: str | None = None
        self.tmp: str | None = None

    # --- episode ---------------------------------------------------------------------------------
    def make_task(self, task_id: int) -> ToolTask:
        from agentgym.envs.tools.sheet_tasks import build_task

        return build_task(task_id)

    def original_task(self, record: OriginalTask) -> ToolTask:
        """The original's task: its sheet, its gold sheet, and its reference action path as the
        plan (after opening the sheet, which the original's tasks leave to the agent)."""
        name = original.sheet_name(record.goal)
        plan = [ToolCall("open_sheet", {"name": name})]
        for call in original.reference_plan(record.subgoals):
            spec = self.tool_specs.get(call.name)
            try:  # the path writes numbers as text ('4'); keep the arguments a call would have
                plan.append(ToolCall(call.name, validate(spec, call.args)) if spec else call)
            except ToolError:
                plan.append(call)
        plan.append(ToolCall("finish", {}))
        return ToolTask(
            goal=record.goal,
            subgoals=[Subgoal("state", ("sheet", name), label="the sheet equals the gold sheet")],
            plan=plan,
            context={"sheet": name, "gold": original.gold_sheet(record.answer), "original": True},
            template="original",
        )

    def open_backend(self, task: ToolTask) -> None:
        if task.context.get("original"):
            # The original's workbook (42 sheets) stays in memory: writing it to .xlsx after every
            # change would take seconds a step.
            assert self.original_book is not None
            self.book = self.original_book.copy()
        else:
            from agentgym.envs.tools.sheet_tasks import initial_workbook

            self.tmp = tempfile.mkdtemp(prefix="agentgym-sheet-")
            self.path = str(Path(self.tmp) / "workbook.xlsx")
            initial_workbook(task.context["seed"]).save(self.path)
            self.book = sw.Workbook.load(self.path)
        self.current = None
        self.gold: list[list[str]] = task.context["gold"]
        self.start_match = _grid_match(self._target_values(), self.gold)
        self.best = 0.0

    def close_backend(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = self.path = None

    def _target_values(self) -> list[list[str]]:
        sheet = self.book.sheets.get(self.task.context["sheet"])
        return sheet.all_values() if sheet is not None else []

    def progress(self) -> tuple[float, float]:
        current = self._target_values()
        match = _grid_match(current, self.gold)
        if current == self.gold:
            now = 1.0
        elif self.start_match >= 1.0:
            now = 0.0
        else:
            now = max(0.0, (match - self.start_match) / (1.0 - self.start_match))
        self.last_match = match
        gain = max(0.0, now - self.best)
        self.best = max(self.best, now)
        return gain, self.best

    def step(self, action: str) -> Any:
        outcome = super().step(action)
        if not self.profile:
            outcome.info["match"] = f"{self.last_match:.4f}"
        return outcome

    # --- the original's rules (profile agentgym) --------------------------------------------------
    def original_progress(self) -> float:
        # The original compared the open sheet, whichever it is, with the gold sheet.
        if self.current is None or self.current not in self.book.sheets:
            return 0.0
        return original.match_score(self.book.sheets[self.current].all_values(), self.gold)

    def invalid_action(self, name: str) -> str:
        return (
            f"ERROR | Invalid action: {name}. Please choose another valid action from {list(self.tool_specs)}"
        )

    # --- helpers ---------------------------------------------------------------------------------
    def _sheet(self) -> sw.Sheet:
        if self.current is None or self.current not in self.book.sheets:
            raise ToolError("Please open a sheet before operating it.")
        return self.book.sheets[self.current]

    def _save(self) -> list[list[str]]:
        if self.path is not None:
            self.book.save(self.path)
        return self._sheet().all_values()

    @staticmethod
    def _a1(text: str) -> tuple[int, int]:
        try:
            return sw.parse_a1(text)
        except sw.SheetError as exc:
            raise ToolError(f"Error: {exc}") from None

    @staticmethod
    def _table(values: list[Any]) -> list[list[Any]]:
        if not all(isinstance(row, list | tuple) for row in values):
            raise ToolError("Error: values_list must be a 2D list (a list of lists); please check it.")
        return [list(row) for row in values]

    def _formula(self, start: str | None, end: str | None, positions: list[Any] | None, operator: str) -> str:
        if operator not in OPERATORS:
            raise ToolError(f"Error: the operator should be one of {list(OPERATORS)}.")
        hint = "Use A1 notation for every position; get_A1_annotation(row, col) gives a cell's A1 address."
        if positions is not None:
            if not positions or not all(isinstance(p, str) and _SINGLE_A1.match(p) for p in positions):
                raise ToolError(f"Error: {hint}")
            return f"={operator}({','.join(positions)})"
        if start is None or end is None:
            raise ToolError("Error: give either position_list, or start_position and end_position.")
        if not (_SINGLE_A1.match(start) and _SINGLE_A1.match(end)):
            raise ToolError(f"Error: {hint}")
        return f"={operator}({start}:{end})"

    # --- tools -----------------------------------------------------------------------------------
    @tool(
        "Open a sheet of the workbook by its name.",
        (Param("name", "string", "The name of the sheet to open."),),
        "- result : a confirmation, or an error message.",
    )
    def open_sheet(self, name: str) -> str:
        if name not in self.book.sheets:
            raise ToolError(
                f"Error: there is no sheet named {name!r}; the sheets are {list(self.book.sheets)}."
            )
        self.current = name
        return f"You have opened the sheet {name}."

    @tool(
        "Delete a sheet of the workbook.",
        (Param("name", "string", "The name of the sheet to delete."),),
        "- result : whether the sheet was deleted.",
        mutates=True,
    )
    def del_sheet(self, name: str) -> str:
        if name not in self.book.sheets:
            raise ToolError(f"Error: there is no sheet named {name!r}.")
        if len(self.book.sheets) == 1:
            raise ToolError("Error: a workbook must keep at least one sheet.")
        del self.book.sheets[name]
        if self.current == name:
            self.current = None
        if self.path is not None:
            self.book.save(self.path)
        return f"You have deleted the sheet {name}."

    @tool(
        "Freeze the first rows or columns of the sheet.",
        (
            Param("dimension", "string", "What to freeze.", enum=("rows", "columns")),
            Param("num", "integer", "How many rows or columns to freeze."),
        ),
        "- result : whether it worked.",
        mutates=True,
    )
    def freeze_data(self, dimension: str, num: int) -> str:
        sheet = self._sheet()
        if num < 0:
            raise ToolError("Error: num must not be negative.")
        if dimension == "rows":
            sheet.frozen_rows = num
        else:
            sheet.frozen_cols = num
        self._save()
        return f"The first {num} {dimension} are frozen."

    @tool(
        "Translate a cell position (row, col) into A1 notation.",
        (
            Param("row", "integer", "The row number (from 1)."),
            Param("col", "integer", "The column number (from 1)."),
        ),
        "- result (Type: string): the cell's A1 notation.",
    )
    def get_A1_annotation(self, row: int, col: int) -> str:
        self._sheet()
        if not (1 <= row <= sw.MAX_ROWS and 1 <= col <= sw.MAX_COLS):
            raise ToolError(f"Error: row must be 1-{sw.MAX_ROWS} and col 1-{sw.MAX_COLS}.")
        return sw.address(row, col)

    @tool(
        "Insert columns at a column index; the columns from there on move right.",
        (
            Param(
                "values_list",
                "array",
                "The new columns: one list of values per column, top to bottom.",
                type_label="array[array[Any]]",
            ),
            Param("col_idx", "integer", "The index the first new column gets (1 for column A)."),
        ),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def insert_cols(self, values_list: list[Any], col_idx: int) -> list[list[str]]:
        sheet = self._sheet()
        cols = self._table(values_list)
        if not 1 <= col_idx <= sheet.extent()[1] + 1:
            raise ToolError(f"Error: col_idx must be between 1 and {sheet.extent()[1] + 1}.")
        try:
            sheet.insert_cols(col_idx, cols)
        except sw.SheetError as exc:
            raise ToolError(f"Error: {exc}") from None
        return self._save()

    @tool(
        "Insert rows at a row index; the rows from there on move down.",
        (
            Param(
                "values_list",
                "array",
                "The new rows: one list of values per row, left to right.",
                type_label="array[array[Any]]",
            ),
            Param("row_idx", "integer", "The index the first new row gets (1 for the top row)."),
        ),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def insert_rows(self, values_list: list[Any], row_idx: int) -> list[list[str]]:
        sheet = self._sheet()
        rows = self._table(values_list)
        if not 1 <= row_idx <= sheet.extent()[0] + 1:
            raise ToolError(f"Error: row_idx must be between 1 and {sheet.extent()[0] + 1}.")
        if sheet.extent()[0] + len(rows) > sw.MAX_ROWS or any(len(r) > sw.MAX_COLS for r in rows):
            raise ToolError("Error: the rows do not fit in the sheet.")
        sheet.insert_rows(row_idx, rows)
        return self._save()

    @tool(
        "Delete rows or columns by their indexes.",
        (
            Param("dimension", "string", "What to delete.", enum=("row", "col")),
            Param(
                "index_list",
                "array",
                "The indexes of the rows or columns to delete.",
                type_label="array[integer]",
            ),
        ),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def delete_batch_data(self, dimension: str, index_list: list[Any]) -> list[list[str]]:
        sheet = self._sheet()
        try:
            indexes = sorted({int(i) for i in index_list})
        except (TypeError, ValueError):
            raise ToolError("Error: index_list must be a list of integers.") from None
        rows, cols = sheet.extent()
        limit = rows if dimension == "row" else cols
        if self.profile:  # the original's grid went on past the data: deleting empty lines is allowed
            limit = sw.MAX_ROWS if dimension == "row" else sw.MAX_COLS
        if not indexes or indexes[0] < 1 or indexes[-1] > limit:
            raise ToolError(f"Error: every index must be between 1 and {limit}.")
        if dimension == "row":
            if len(indexes) >= rows - 1:
                raise ToolError(
                    "Error: you cannot delete the whole sheet at once; please use other functions."
                )
            sheet.delete_rows(indexes)
        else:
            if len(indexes) == cols:
                raise ToolError(
                    "Error: you cannot delete the whole sheet at once; please use other functions."
                )
            sheet.delete_cols(indexes)
        return self._save()

    @tool(
        "Set the value of a cell (a number, text, or a formula starting with '=').",
        (_POS, Param("value", "any", "The value to set.", type_label="Any")),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def update_cell(self, position: str, value: Any) -> list[list[str]]:
        sheet = self._sheet()
        r, c = self._a1(position)
        if isinstance(value, list | dict):
            raise ToolError("Error: value must be a single number or text.")
        sheet.set(r, c, value)
        return self._save()

    @tool(
        "Write a formula into a cell that applies a function to other cells. Give either position_list, or start_position and end_position.",
        (
            _RANGE_START,
            _RANGE_END,
            _LIST,
            Param("result_position", "string", "The cell that gets the formula."),
            _OPERATOR,
        ),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def update_cell_by_formula(
        self,
        start_position: str | None,
        end_position: str | None,
        position_list: list[Any] | None,
        result_position: str,
        operator: str,
    ) -> list[list[str]]:
        sheet = self._sheet()
        formula = self._formula(start_position, end_position, position_list, operator)
        if not _SINGLE_A1.match(result_position):
            raise ToolError("Error: use A1 notation for result_position, like 'G2'.")
        r, c = self._a1(result_position)
        sheet.set(r, c, formula)
        return self._save()

    @tool(
        "Set the values of a range of cells from a list of rows.",
        (_START, _END, _VALUES),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def update_range(self, start_position: str, end_position: str, values_list: list[Any]) -> list[list[str]]:
        sheet = self._sheet()
        (r1, c1), (r2, c2) = self._a1(start_position), self._a1(end_position)
        rows = self._table(values_list)
        if r2 < r1 or c2 < c1:
            raise ToolError("Error: end_position must be below and to the right of start_position.")
        last_r, last_c = sheet.extent()
        if (r1, c1) == (1, 1) and (r2, c2) == (last_r, last_c):
            raise ToolError("Error: you cannot update the whole sheet at once; please use other functions.")
        if len(rows) > r2 - r1 + 1 or any(len(row) > c2 - c1 + 1 for row in rows):
            raise ToolError(
                f"Error: the values do not fit the range {start_position}:{end_position} "
                f"({r2 - r1 + 1} rows by {c2 - c1 + 1} columns)."
            )
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if isinstance(v, list | dict):
                    raise ToolError("Error: each value must be a single number or text.")
                sheet.set(r1 + i, c1 + j, v)
        return self._save()

    @tool(
        "Sort the rows of the sheet (below the frozen rows) by one column.",
        (
            Param("col_num", "integer", "The number of the column to sort by (1 for column A)."),
            Param(
                "order", "string", "The order: 'asc' (ascending) or 'des' (descending).", enum=("asc", "des")
            ),
        ),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def sort_sheet_by_col(self, col_num: int, order: str) -> list[list[str]]:
        sheet = self._sheet()
        if not 1 <= col_num <= max(1, sheet.extent()[1]):
            raise ToolError(f"Error: col_num must be between 1 and {sheet.extent()[1]}.")
        try:
            sheet.sort(col_num, order == "des")
        except sw.SheetError as exc:
            raise ToolError(f"Error: {exc}") from None
        return self._save()

    @tool(
        "Merge a range of cells into one; the top-left value is kept.",
        (_START, _END),
        "- result : the sheet's values after the change.",
        mutates=True,
    )
    def merge_cells(self, start_position: str, end_position: str) -> list[list[str]]:
        sheet = self._sheet()
        (r1, c1), (r2, c2) = self._a1(start_position), self._a1(end_position)
        try:
            sheet.merge(r1, c1, r2, c2)
        except sw.SheetError as exc:
            raise ToolError(f"Error: {exc}") from None
        return self._save()

    @tool(
        "Set the note of a cell.",
        (_POS, Param("content", "string", "The text of the note.")),
        "- result (Type: string): the cell's note after the change.",
        mutates=True,
    )
    def update_note(self, position: str, content: str) -> str:
        sheet = self._sheet()
        r, c = self._a1(position)
        sheet.set_note(r, c, content)
        self._save()
        return f"The note of {position} is now: {content}"

    @tool(
        "Show all the values of the open sheet.",
        returns="- result (Type: array[array[Any]]): the values, row by row.",
    )
    def get_all_values(self) -> list[list[str]]:
        return self._sheet().all_values()

    @tool(
        "Show the values of a range of cells.",
        (_START, _END),
        "- result (Type: array[array[Any]]): the values, row by row.",
    )
    def get_range_values(self, start_position: str, end_position: str) -> list[list[str]]:
        sheet = self._sheet()
        (r1, c1), (r2, c2) = self._a1(start_position), self._a1(end_position)
        if r2 < r1 or c2 < c1:
            raise ToolError("Error: end_position must be below and to the right of start_position.")
        return sheet.values(r1, c1, r2, c2)

    @tool("Show the value of one cell.", (_POS,), "- result : the cell's value (None when it is empty).")
    def get_cell_value(self, position: str) -> str | None:
        sheet = self._sheet()
        r, c = self._a1(position)
        shown = sheet.display(r, c)
        return shown if shown != "" else None

    @tool(
        "Compute a function over cells without changing the sheet. Give either position_list, or start_position and end_position.",
        (_RANGE_START, _RANGE_END, _LIST, _OPERATOR),
        "- result (Type: string): the computed value.",
    )
    def get_value_by_formula(
        self,
        start_position: str | None,
        end_position: str | None,
        position_list: list[Any] | None,
        operator: str,
    ) -> str:
        sheet = self._sheet()
        return sw.formula_result(sheet, self._formula(start_position, end_position, position_list, operator))

    @tool(
        "Find the cells whose value matches a text or regular expression (searched case-sensitively).",
        (
            Param(
                "query",
                "string",
                "The text or regular expression to look for.",
                type_label="['string', 're.RegexObject']",
            ),
            Param(
                "in_row",
                "integer",
                "Only search this row (default: all rows).",
                required=False,
                type_label="['integer', 'None']",
            ),
            Param(
                "in_column",
                "integer",
                "Only search this column (default: all columns).",
                required=False,
                type_label="['integer', 'None']",
            ),
        ),
        "- result (Type: array[string]): the positions of the matching cells, row by row.",
    )
    def filter_cells(self, query: str, in_row: int | None, in_column: int | None) -> list[str]:
        sheet = self._sheet()
        try:
            pattern = re.compile(query)
        except re.error as exc:
            raise ToolError(f"Error: the query is not a valid regular expression ({exc}).") from None
        rows, cols = sheet.extent()
        found = []
        for r in range(1, rows + 1):
            if in_row is not None and r != in_row:
                continue
            for c in range(1, cols + 1):
                if in_column is not None and c != in_column:
                    continue
                shown = sheet.display(r, c)
                if shown and pattern.search(shown):
                    found.append(sw.address(r, c))
        return found

    @tool("Show the note of a cell (empty when it has none).", (_POS,), "- result (Type: string): the note.")
    def get_note(self, position: str) -> str:
        sheet = self._sheet()
        r, c = self._a1(position)
        return sheet.cell(r, c).note

    @tool(
        "Finish the task: the sheet is as the goal asks.",
        returns="- result (Type: array[array[Any]]): the values of the open sheet.",
    )
    def finish(self) -> Any:
        if self.current is None or self.current not in self.book.sheets:
            return "No sheet is open."
        return self._sheet().all_values()

    # --- expert ----------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The reference plan while the agent has followed it (reads aside) and the sheet accepts
        its calls (an original's path was written for Google Sheets); otherwise a repair: open the
        sheet, fix its size, then rewrite the rows that differ from the gold sheet."""
        if self._on_plan() and (call := self.plan_cursor_call()) not in self.refused:
            # An original's path may stop short of its gold sheet: finish only on the gold sheet.
            if call.name != "finish" or self._target_values() == self.gold:
                return self.render_action(call)
        fix = self._repair()
        if self.calls and fix == self.calls[-1]:  # it changed nothing: the gold is out of reach here
            fix = ToolCall("finish", {})
        return self.render_action(fix)

    def _on_plan(self) -> bool:
        plan = self.task.plan
        i = 0
        for c in self.calls:
            if i < len(plan) and c.name == plan[i].name and c.args == plan[i].args:
                i += 1
            elif self.tool_specs[c.name].mutates:
                return False
        return True

    def _repair(self) -> ToolCall:
        target = self.task.context["sheet"]
        if target not in self.book.sheets:
            return ToolCall("finish", {})
        if self.current != target:
            return ToolCall("open_sheet", {"name": target})
        current, gold = self._target_values(), self.gold
        if current == gold:
            return ToolCall("finish", {})
        if len(current) > len(gold):
            return ToolCall(
                "delete_batch_data",
                {"dimension": "row", "index_list": list(range(len(gold) + 1, len(current) + 1))},
            )
        width = len(gold[0]) if gold else 0
        have = len(current[0]) if current else 0
        if have > width:
            return ToolCall(
                "delete_batch_data", {"dimension": "col", "index_list": list(range(width + 1, have + 1))}
            )
        if len(current) < len(gold):
            return ToolCall(
                "insert_rows",
                {"values_list": [_typed(row) for row in gold[len(current) :]], "row_idx": len(current) + 1},
            )
        for r, row in enumerate(gold, start=1):
            if r > len(current) or current[r - 1] != row:
                end = sw.address(r, width)
                return ToolCall(
                    "update_range",
                    {"start_position": f"A{r}", "end_position": end, "values_list": [_typed(row)]},
                )
        return ToolCall("finish", {})


def _typed(row: list[str]) -> list[Any]:
    """Shown values back as values to write (numbers as numbers)."""
    out: list[Any] = []
    for v in row:
        text = v.replace(",", "")
        try:
            out.append(float(text.rstrip("%")) / 100 if text.endswith("%") else float(text))
        except ValueError:
            out.append(v)
    return out
