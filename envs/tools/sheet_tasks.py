"""Task generation for the Sheet env (sheet.py): generated sheets and task templates, each solved
with the env's own tools on a scratch copy of the workbook; the resulting sheet is the gold."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from agentgym.envs.tools import sheet_world as sw
from agentgym.envs.tools.base import ToolTask
from agentgym.envs.tools.planner import Planner, TaskRejected
from agentgym.envs.tools.progress import Subgoal
from agentgym.envs.tools.sheet import SheetEnv

# --- generated sheets ------------------------------------------------------------------------------
_PRODUCTS = (
    ("beef", "Meat"), ("pork", "Meat"), ("chicken", "Meat"), ("lamb", "Meat"), ("duck", "Meat"), ("turkey", "Meat"),
    ("fish", "Seafood"), ("shrimp", "Seafood"), ("salmon", "Seafood"), ("tuna", "Seafood"), ("crab", "Seafood"),
    ("apple", "Fruits"), ("banana", "Fruits"), ("orange", "Fruits"), ("grape", "Fruits"), ("mango", "Fruits"), ("pear", "Fruits"),
    ("carrot", "Vegetables"), ("potato", "Vegetables"), ("onion", "Vegetables"), ("spinach", "Vegetables"), ("tomato", "Vegetables"),
    ("milk", "Dairy"), ("cheese", "Dairy"), ("yogurt", "Dairy"), ("butter", "Dairy"),
    ("bread", "Bakery"), ("bagel", "Bakery"), ("croissant", "Bakery"),
)  # fmt: skip
_STORES = ("Store A", "Store B", "Store C", "Store D")
_STUDENTS = (
    "Alice", "Bob", "Catherine", "David", "Eva", "Frank", "Grace", "Hugo", "Ivy", "Jack", "Katie", "Leo",
    "Mandy", "Nelson", "Olivia", "Paul", "Quincy", "Robert", "Sophia", "Tom", "Ursula", "Victor", "Wendy",
    "Xavier", "Yasmine", "Zoe", "Aaron", "Bella", "Chris", "Diana",
)  # fmt: skip
_SUBJECTS = ("Math", "English", "Physics", "Chemistry", "Biology")
_WORK = (
    ("Website Update", "Development"), ("App Release", "Development"), ("Server Maintenance", "Maintenance"),
    ("Database Backup", "Maintenance"), ("Security Audit", "IT"), ("Hardware Upgrade", "IT"),
    ("Content Creation", "Marketing"), ("SEO Optimization", "Marketing"), ("Newsletter", "Marketing"),
    ("Social Media Update", "Marketing"), ("Market Research", "Marketing"), ("Client Meeting", "Client Relations"),
    ("Budget Review", "Finance"), ("Invoice Processing", "Finance"), ("Logo Redesign", "Design"),
)  # fmt: skip
_PEOPLE = (
    "Jane Smith",
    "John Doe",
    "Mary Johnson",
    "Peter Williams",
    "Susan Clark",
    "James Wilson",
    "Linda Jackson",
    "Steven Harris",
)
_STATUS = ("Not Started", "In Progress", "Completed", "Scheduled")
_PRIORITY = ("High", "Medium", "Low")


@lru_cache(maxsize=512)
def initial_workbook(seed: str) -> sw.Workbook:
    """The workbook of a task: the task's sheet (built by its template) and two other sheets."""
    task_id = int(seed.split("/")[1])
    _, template = TEMPLATES[task_id % len(TEMPLATES)]
    rng = random.Random(seed)
    target = _sheet_name(task_id)
    main, _ = template.make(rng, target)
    others = []
    for k, kind in enumerate(rng.sample(("inventory", "scores", "work", "sales"), 2)):
        name = f"Sheet{(task_id % 20 + 1 + 20 * (k + 1))}"
        others.append(_table(name, *_data(kind, random.Random(f"{seed}/other/{k}"), 8)))
    return sw.Workbook([main, *others])


def _sheet_name(task_id: int) -> str:
    return f"Sheet{task_id % 20 + 1}"


def _table(name: str, header: list[str], rows: list[list[Any]], formats: list[str]) -> sw.Sheet:
    sheet = sw.Sheet(name)
    for c, h in enumerate(header, start=1):
        sheet.cells[(1, c)] = sw.Cell(h)
    for r, row in enumerate(rows, start=2):
        for c, v in enumerate(row, start=1):
            sheet.cells[(r, c)] = sw.Cell(sw.to_value(v) if v != "" else None, formats[c - 1])
    return sheet


def _data(kind: str, rng: random.Random, n: int) -> tuple[list[str], list[list[Any]], list[str]]:
    if kind == "inventory":
        header = ["Product", "Category", "Price", "Quantity", "Discount", "Location", "Product Rating"]
        rows = [
            [
                p,
                cat,
                round(rng.uniform(0.3, 15), 2),
                rng.randint(3, 250),
                rng.choice((0, 0.05, 0.1, 0.12, 0.15, 0.2)),
                rng.choice(_STORES),
                round(rng.uniform(3.5, 5.0), 1),
            ]
            for p, cat in rng.sample(_PRODUCTS, n)
        ]
        return header, rows, ["General", "General", "0.00", "0", "0.00", "General", "0.0"]
    if kind == "scores":
        header = ["Name", "Class", *_SUBJECTS]
        rows = [
            [s, rng.randint(1, 3), *(rng.randint(55, 100) for _ in _SUBJECTS)]
            for s in rng.sample(_STUDENTS, n)
        ]
        return header, rows, ["General", "0", "0", "0", "0", "0", "0"]
    if kind == "work":
        header = ["Task Name", "Status", "Priority", "Category", "Hours", "Owner"]
        rows = [
            [t, rng.choice(_STATUS), rng.choice(_PRIORITY), cat, rng.randint(1, 30), rng.choice(_PEOPLE)]
            for t, cat in rng.sample(_WORK, n)
        ]
        return header, rows, ["General", "General", "General", "General", "0", "General"]
    header = ["Product", "Category", "Price", "Sold", "Location", "Profit"]
    rows = [
        [p, cat, round(rng.uniform(0.5, 15), 2), rng.randint(2, 90), rng.choice(_STORES), ""]
        for p, cat in rng.sample(_PRODUCTS, n)
    ]
    return header, rows, ["General", "General", "0.00", "0", "General", "0.00"]


# --- templates -----------------------------------------------------------------------------------
class _Template:
    """A task family: `make` builds the task's sheet, `solve` edits it with the tools."""

    def __init__(
        self,
        make: Callable[[random.Random, str], tuple[sw.Sheet, dict[str, Any]]],
        solve: Callable[[Planner, sw.Sheet, dict[str, Any]], str],
    ) -> None:
        self.make = make
        self.solve = solve


def _col(sheet: sw.Sheet, header: str) -> int:
    return next(c for c in range(1, sheet.extent()[1] + 1) if sheet.display(1, c) == header)


def _column_values(sheet: sw.Sheet, header: str) -> list[Any]:
    c = _col(sheet, header)
    return [sheet.computed(r, c) for r in range(2, sheet.extent()[0] + 1)]


def _no_ties(values: list[Any]) -> None:
    """Reject values that tie where the goal needs an order (ranks). A sort with ties is still
    well defined: the sort is stable and no other tool reorders rows."""
    if len(set(values)) != len(values):
        raise TaskRejected("ties")


def _sort(p: Planner, col: int, order: str) -> None:
    p.quiet("freeze_data", dimension="rows", num=1)
    p.quiet("sort_sheet_by_col", col_num=col, order=order)


def _simple(kind: str, n: int) -> Callable[[random.Random, str], tuple[sw.Sheet, dict[str, Any]]]:
    def make(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
        return _table(name, *_data(kind, rng, n)), {"rng": rng}

    return make


def _solve_sold(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    rows = s.extent()[0]
    sold = {r: rng.randint(0, int(s.computed(r, 4))) for r in range(2, rows + 1)}
    new = [[s.computed(r, 4) - sold[r]] for r in range(2, rows + 1)]
    table = [["Product", "Today Sold"]] + [[s.display(r, 1), str(sold[r])] for r in range(2, rows + 1)]
    p.quiet("update_range", start_position="D2", end_position=f"D{rows}", values_list=new)
    _sort(p, 4, "des")
    return (
        f'The table in "{s.name}" holds the product inventory, and {table} is today\'s sales. Subtract '
        f'today\'s sales from each product\'s "Quantity", then sort the table by "Quantity" in descending order.'
    )


def _solve_promotion(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    ratings = sorted(_column_values(s, "Product Rating"))
    if ratings[2] == ratings[3]:
        raise TaskRejected("the three lowest ratings are not clear")
    _sort(p, 7, "des")
    rows = s.extent()[0]
    new = [[round(float(s.computed(r, 5)) + 0.05, 2)] for r in range(rows - 2, rows + 1)]
    p.quiet("update_range", start_position=f"E{rows - 2}", end_position=f"E{rows}", values_list=new)
    return (
        f'"{s.name}" holds the product inventory. Sort the products by "Product Rating" in descending order, '
        "then raise the discount of the three lowest-rated products by 0.05."
    )


def _solve_drop_categories(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    cats = sorted({v for v in _column_values(s, "Category")})
    if len(cats) < 3:
        raise TaskRejected("few categories")
    drop = sorted(rng.sample(cats, 2))
    rows = [r for r in range(2, s.extent()[0] + 1) if s.computed(r, 2) in drop]
    keep = [s.computed(r, 4) for r in range(2, s.extent()[0] + 1) if r not in rows]
    if not rows or len(keep) < 2:
        raise TaskRejected("nothing to delete")
    p.quiet("filter_cells", query=f"^({'|'.join(drop)})$", in_column=2)
    p.quiet("delete_batch_data", dimension="row", index_list=rows)
    _sort(p, 4, "des")
    return (
        f'The table in "{s.name}" holds the product inventory. Remove the products in the categories '
        f'{drop[0]!r} and {drop[1]!r}, then sort the rest by "Quantity" in descending order.'
    )


def _make_gappy(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("inventory", rng, 9)
    gap_row = rng.randint(3, 8)
    gap_col = rng.randint(3, 6)
    rows.insert(gap_row - 2, [""] * len(header))
    header.insert(gap_col - 1, "")
    formats.insert(gap_col - 1, "General")
    for row in rows:
        row.insert(gap_col - 1, "")
    return _table(name, header, rows, formats), {"gap_row": gap_row, "gap_col": gap_col}


def _solve_gaps(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    p.quiet("delete_batch_data", dimension="row", index_list=[k["gap_row"]])
    p.quiet("delete_batch_data", dimension="col", index_list=[k["gap_col"]])
    p.quiet("merge_cells", start_position="A1", end_position="B1")
    return f'In "{s.name}", delete the empty row and the empty column inside the table, then merge the header cells of the first two columns into one.'


def _make_notes(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header = ["Name", "Group", "Progress", "Overall Score"]
    people = rng.sample(_STUDENTS, 12)
    scores = rng.sample(range(30, 100), 12)
    rows = [
        [n, f"Group {rng.randint(1, 5)}", f"Chapter {rng.randint(1, 10)}", sc]
        for n, sc in zip(people, scores, strict=True)
    ]
    sheet = _table(name, header, rows, ["General", "General", "General", "0"])
    noted = sorted(rng.sample(range(2, 14), 3))
    used = set(scores)
    updates = {}
    for r in noted:
        score = rng.choice([v for v in range(30, 100) if v not in used])
        used.add(score)
        chapter = f"Chapter {rng.randint(1, 10)}"
        updates[r] = (chapter, score)
        sheet.set_note(r, 1, f"Progress: {chapter}; Overall Score: {score}")
    return sheet, {"notes": updates}


def _solve_notes(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    names = []
    for r in sorted(k["notes"]):
        names.append(s.display(r, 1))
        p.quiet("get_note", position=f"A{r}")
    for r, (chapter, score) in sorted(k["notes"].items()):
        p.quiet("update_range", start_position=f"C{r}", end_position=f"D{r}", values_list=[[chapter, score]])
    _sort(p, 4, "des")
    return (
        f'In "{s.name}", the cells of {", ".join(names)} carry notes with updated progress and scores. Update '
        'their rows as the notes say, then sort the table by "Overall Score" in descending order.'
    )


def _make_totals(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("scores", rng, 10)
    header += ["Total", "Average"]
    formats += ["0", "0.00"]
    rows = [[*row, "", ""] for row in rows]
    return _table(name, header, rows, formats), {}


def _solve_totals(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rows = s.extent()[0]
    totals = [sum(float(s.computed(r, c)) for c in range(3, 8)) for r in range(2, rows + 1)]
    p.quiet(
        "update_range", start_position="H2", end_position=f"I{rows}", values_list=[[t, t / 5] for t in totals]
    )
    _sort(p, 8, "des")
    return (
        f'In "{s.name}", fill in each student\'s "Total" (the sum of the five subjects) and "Average" (their '
        'mean), then sort the table by "Total" in descending order.'
    )


def _solve_rank(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    subject = rng.choice(_SUBJECTS)
    col = _col(s, subject)
    _no_ties(_column_values(s, subject))
    _sort(p, col, "des")
    n = s.extent()[0] - 1
    p.quiet("insert_cols", values_list=[[f"{subject}_Rank", *range(1, n + 1)]], col_idx=col + 1)
    return (
        f'In "{s.name}", rank the students by their {subject} score: sort the table by "{subject}" in '
        f'descending order and insert a column "{subject}_Rank" right after "{subject}" with each '
        "student's rank (1 for the best)."
    )


def _make_invalid(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("scores", rng, 12)
    bad = sorted(rng.sample(range(len(rows)), rng.randint(2, 4)))
    for i in bad:
        rows[i][rng.randint(2, 6)] = -1
    return _table(name, header, rows, formats), {"bad": [i + 2 for i in bad]}


def _solve_invalid(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    p.quiet("filter_cells", query="^-1$")
    p.quiet("delete_batch_data", dimension="row", index_list=k["bad"])
    return f'In "{s.name}", some scores are invalid (recorded as -1). Delete the rows of the students with an invalid score.'


def _solve_work_updates(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    rows = sorted(rng.sample(range(2, s.extent()[0] + 1), 3))
    table = [["Task Name", "Status", "Hours"]]
    for r in rows:
        status, hours = rng.choice(_STATUS), rng.randint(0, 30)
        table.append([s.display(r, 1), status, str(hours)])
        p.quiet("update_cell", position=f"B{r}", value=status)
        p.quiet("update_cell", position=f"E{r}", value=hours)
    _sort(p, 5, "des")
    return f'In "{s.name}", update these tasks: {table}. Then sort the table by "Hours" in descending order.'


def _make_missing(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("work", rng, 11)
    blanks = sorted(rng.sample(range(len(rows)), 3))
    owners = {}
    for i in blanks:
        owners[i + 2] = rows[i][5]
        rows[i][5] = ""
    return _table(name, header, rows, formats), {"owners": owners}


def _solve_missing(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    info = [[s.display(r, 1), owner] for r, owner in sorted(k["owners"].items())]
    for r, owner in sorted(k["owners"].items()):
        p.quiet("update_cell", position=f"F{r}", value=owner)
    _sort(p, 5, "des")
    return (
        f'In "{s.name}", some tasks have no "Owner". Fill them in from this list of [task, owner]: {info}. '
        'Then sort the table by "Hours" in descending order.'
    )


def _make_groups(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("work", rng, 10)
    header.append("Category Hours")
    formats.append("0")
    return _table(name, header, [[*row, ""] for row in rows], formats), {}


def _solve_groups(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    p.quiet("freeze_data", dimension="rows", num=1)
    p.quiet("sort_sheet_by_col", col_num=4, order="asc")
    rows = s.extent()[0]
    cats = [s.computed(r, 4) for r in range(2, rows + 1)]
    sums = Counter()
    for r in range(2, rows + 1):
        sums[s.computed(r, 4)] += float(s.computed(r, 5))
    p.quiet(
        "update_range", start_position="G2", end_position=f"G{rows}", values_list=[[sums[c]] for c in cats]
    )
    runs = []
    start = 2
    for r in range(3, rows + 2):
        if r == rows + 1 or cats[r - 2] != cats[start - 2]:
            if r - 1 > start:
                runs.append((start, r - 1))
            start = r
    if not runs or len(runs) > 5:
        raise TaskRejected("no groups to merge")
    for a, b in runs:
        p.quiet("merge_cells", start_position=f"G{a}", end_position=f"G{b}")
    return (
        f'In "{s.name}", sort the tasks by "Category" in ascending order. Then fill "Category Hours" with the '
        "total hours of each task's category, and merge the cells of the tasks of one category into a "
        "single cell."
    )


def _solve_profit(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rows = s.extent()[0]
    for r in range(2, rows + 1):
        p.quiet(
            "update_cell_by_formula",
            position_list=[f"C{r}", f"D{r}"],
            result_position=f"F{r}",
            operator="PRODUCT",
        )
    _sort(p, 6, "des")
    return (
        f'In "{s.name}", fill in the "Profit" of each product (its "Price" times the number "Sold"), then sort '
        'the table by "Profit" in descending order.'
    )


def _make_store_profit(rng: random.Random, name: str) -> tuple[sw.Sheet, dict[str, Any]]:
    header, rows, formats = _data("sales", rng, 9)
    for row in rows:
        row[5] = round(row[2] * row[3], 2)
    return _table(name, header, rows, formats), {}


def _solve_store_profit(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rows = s.extent()[0]
    totals: Counter[str] = Counter()
    for r in range(2, rows + 1):
        totals[s.computed(r, 5)] += float(s.computed(r, 6))
    ranked = totals.most_common()
    if len(ranked) < 2 or ranked[0][1] == ranked[1][1]:
        raise TaskRejected("tie")
    store = ranked[0][0]
    cells = p.quiet("filter_cells", query=store, in_column=5)
    doomed = [r for r in range(2, rows + 1) if s.computed(r, 5) == store]
    if len(doomed) >= rows - 2:
        raise TaskRejected("would empty the table")
    p.quiet("get_value_by_formula", position_list=[f"F{sw.parse_a1(c)[0]}" for c in cells], operator="SUM")
    p.quiet("delete_batch_data", dimension="row", index_list=doomed)
    _sort(p, 6, "des")
    return (
        f'In "{s.name}", remove every record of the store with the highest total profit, then sort the table '
        'by "Profit" in descending order.'
    )


def _solve_double_filter(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    a, b = rng.sample(_SUBJECTS, 2)
    ca, cb = _col(s, a), _col(s, b)
    ta, tb = rng.choice((70, 75, 80)), rng.choice((70, 75, 80, 85))
    rows = s.extent()[0]
    doomed = [r for r in range(2, rows + 1) if not (s.computed(r, ca) > ta and s.computed(r, cb) > tb)]
    kept = [s.computed(r, cb) for r in range(2, rows + 1) if r not in doomed]
    if len(kept) < 2 or not doomed:
        raise TaskRejected("degenerate filter")
    p.quiet("delete_batch_data", dimension="row", index_list=doomed)
    _sort(p, cb, "des")
    return (
        f'In "{s.name}", keep only the students with {a} above {ta} and {b} above {tb} (delete the other '
        f'rows), then sort by "{b}" in descending order.'
    )


def _solve_toppers(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    rows = s.extent()[0]
    doomed = set()
    for c in range(3, 8):
        col = [s.computed(r, c) for r in range(2, rows + 1)]
        top = max(col)
        doomed.update(r for r in range(2, rows + 1) if s.computed(r, c) == top)
    subject = rng.choice(_SUBJECTS)
    col = _col(s, subject)
    if rows - 1 - len(doomed) < 2:
        raise TaskRejected("too few left")
    for c in range(3, 8):
        p.quiet(
            "get_value_by_formula",
            start_position=f"{sw.col_letter(c)}2",
            end_position=f"{sw.col_letter(c)}{rows}",
            operator="MAX",
        )
    p.quiet("delete_batch_data", dimension="row", index_list=sorted(doomed))
    _sort(p, col, "des")
    return (
        f'In "{s.name}", find the highest score of each subject and delete the rows of the students who have '
        f'one of them. Then sort the table by "{subject}" in descending order.'
    )


def _solve_new_rows(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    have = set(_column_values(s, "Product"))
    new = [
        [
            name,
            cat,
            round(rng.uniform(0.3, 15), 2),
            rng.randint(3, 250),
            rng.choice((0, 0.05, 0.1)),
            rng.choice(_STORES),
            round(rng.uniform(3.5, 5.0), 1),
        ]
        for name, cat in rng.sample([x for x in _PRODUCTS if x[0] not in have], 2)
    ]
    p.quiet("insert_rows", values_list=new, row_idx=s.extent()[0] + 1)
    _sort(p, 3, "asc")
    shown = [[str(v) for v in row] for row in new]
    return (
        f'Add these products to the inventory in "{s.name}": {shown} (same columns as the table). Then sort '
        'the table by "Price" in ascending order.'
    )


def _solve_total_row(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rows = s.extent()[0]
    p.quiet("insert_rows", values_list=[["Total"]], row_idx=rows + 1)
    for c in (3, 4):
        letter = sw.col_letter(c)
        p.quiet(
            "update_cell_by_formula",
            start_position=f"{letter}2",
            end_position=f"{letter}{rows}",
            result_position=f"{letter}{rows + 1}",
            operator="SUM",
        )
    return (
        f'In "{s.name}", add a row at the bottom of the table whose first cell is "Total" and which holds the '
        'sums of the "Price" and "Sold" columns in those columns.'
    )


def _solve_price_rise(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    cats = Counter(_column_values(s, "Category"))
    cat = rng.choice(sorted(c for c, n in cats.items() if n >= 2) or sorted(cats))
    percent = rng.choice((5, 10, 20))
    for r in range(2, s.extent()[0] + 1):
        if s.computed(r, 2) == cat:
            p.quiet(
                "update_cell", position=f"C{r}", value=round(float(s.computed(r, 3)) * (1 + percent / 100), 2)
            )
    return (
        f'In "{s.name}", raise the "Price" of every product in the {cat!r} category by {percent}%, rounded to '
        "two decimal places."
    )


def _solve_drop_column(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    p.quiet("delete_batch_data", dimension="col", index_list=[_col(s, "Location")])
    _sort(p, 1, "asc")
    return (
        f'In "{s.name}", delete the "Location" column, then sort the table by "Product" in ascending order.'
    )


def _solve_rename(p: Planner, s: sw.Sheet, k: dict[str, Any]) -> str:
    rng: random.Random = k["rng"]
    old, new = rng.choice(
        (("Hours", "Estimated Hours"), ("Owner", "Responsible Person"), ("Status", "State"))
    )
    p.quiet("update_cell", position=f"{sw.col_letter(_col(s, old))}1", value=new)
    _sort(p, 1, "asc")
    return f'In "{s.name}", rename the column "{old}" to "{new}", then sort the table by "Task Name" in ascending order.'


TEMPLATES: tuple[tuple[str, _Template], ...] = (
    ("sold_update", _Template(_simple("inventory", 12), _solve_sold)),
    ("promotion", _Template(_simple("inventory", 12), _solve_promotion)),
    ("drop_categories", _Template(_simple("inventory", 12), _solve_drop_categories)),
    ("remove_gaps", _Template(_make_gappy, _solve_gaps)),
    ("notes", _Template(_make_notes, _solve_notes)),
    ("totals", _Template(_make_totals, _solve_totals)),
    ("rank_column", _Template(_simple("scores", 12), _solve_rank)),
    ("invalid_scores", _Template(_make_invalid, _solve_invalid)),
    ("work_updates", _Template(_simple("work", 12), _solve_work_updates)),
    ("missing_owner", _Template(_make_missing, _solve_missing)),
    ("category_groups", _Template(_make_groups, _solve_groups)),
    ("profit", _Template(_simple("sales", 8), _solve_profit)),
    ("top_store", _Template(_make_store_profit, _solve_store_profit)),
    ("double_filter", _Template(_simple("scores", 12), _solve_double_filter)),
    ("subject_toppers", _Template(_simple("scores", 10), _solve_toppers)),
    ("new_rows", _Template(_simple("inventory", 9), _solve_new_rows)),
    ("total_row", _Template(_simple("sales", 8), _solve_total_row)),
    ("price_rise", _Template(_simple("inventory", 10), _solve_price_rise)),
    ("drop_column", _Template(_simple("inventory", 9), _solve_drop_column)),
    ("rename_and_sort", _Template(_simple("work", 10), _solve_rename)),
)


@lru_cache(maxsize=1024)
def build_task(task_id: int) -> ToolTask:
    """Task `task_id`: template task_id % 20 on a sheet generated from the id (re-drawn when the
    data would make an ambiguous task, e.g. ties in a sort column)."""
    name, template = TEMPLATES[task_id % len(TEMPLATES)]
    target = _sheet_name(task_id)
    for attempt in range(100):
        seed = f"sheet/{task_id}/{attempt}"
        env = SheetEnv()
        env.book = initial_workbook(seed).copy()
        planner = Planner(env)
        planner.quiet("open_sheet", name=target)
        planner.quiet("get_all_values")
        sheet = env.book.sheets[target]
        _, extra = template.make(random.Random(seed), target)
        extra.setdefault("rng", random.Random(f"{seed}/solve"))
        try:
            goal = template.solve(planner, sheet, extra)
        except TaskRejected:
            continue
        if len(planner.calls) + 1 > SheetEnv.max_rounds:
            continue
        gold = sheet.all_values()
        task = planner.task(goal, None, template=name, finish_args={})
        task.subgoals = [Subgoal("state", ("sheet", target), label="the sheet equals the gold sheet")]
        task.context = {"seed": seed, "sheet": target, "gold": gold}
        return task
    raise RuntimeError(f"sheet task {task_id}: no valid instance of template {name!r}")
