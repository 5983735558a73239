"""A small BIRD-format dataset generated here: three SQLite databases and templated questions.

The real BIRD data is a download this project may not make, so the default task pool is built by
this module, deterministically (seeded RNG, fixed templates), into a cache folder in BIRD's own
layout. Train questions are on the `school` and `shop` databases, dev questions on `library`: as
in BIRD, the two splits use different databases. Each template's gold SQL is run when the data
is built; instances whose answer is empty or, for "the most ..." questions, tied are skipped, so
every gold answer is well defined.

Run `python -m agentgym.envs.bird.synthetic [DIR]` to (re)build it and print where it is.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentgym.envs._data import PACKAGE_DATA
from agentgym.envs.bird.sqlexec import Limits, run_query

log = logging.getLogger(__name__)

# Bump when the schemas, data or templates change: the data is rebuilt into a new folder.
VERSION = "1"
INSTANCES = 3  # questions per template

_FIRST = (
    "Ada Alan Amira Ana Ben Carla Chen Dana Elena Emil Farah Felix Grace Hugo Ines Ivan Jonas Julia "
    "Kai Lara Leo Lina Marco Maya Nora Omar Paula Quinn Rosa Sam Sara Theo Uma Vera Wen Yara Zoe"
).split()
_LAST = (
    "Abe Baker Costa Diaz Evans Fischer Garcia Hansen Ito Jensen Kowalski Lopez Meyer Novak Okafor "
    "Petrov Quist Rossi Silva Tanaka Umar Varga Weber Xu Young Zimmer"
).split()
_CITIES = "Avalon Brookfield Cedarville Dunmore Eastport Fairview Glenwood Harbor".split()
_COUNTRIES = "Canada Chile France Germany India Japan Kenya Norway".split()
_ADJ = (
    "Silent Golden Hidden Broken Distant Crimson Quiet Wandering Frozen Bright Ancient Hollow "
    "Northern Last Secret Burning"
).split()
_NOUN = (
    "River Garden Mountain Letter Harbor Forest Kingdom Lantern Road Island Winter Echo Mirror Tower".split()
)


@dataclass(frozen=True, slots=True)
class _Item:
    question: str
    evidence: str
    sql: str
    difficulty: str
    # For "the most ..." questions: a query whose first two rows' first values must differ.
    tie_check: str | None = None


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _titles(rng: random.Random, n: int) -> list[str]:
    pool = [f"The {a} {b}" for a in _ADJ for b in _NOUN]
    return rng.sample(pool, n)


def _date(rng: random.Random, years: range) -> str:
    return f"{rng.choice(years)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


# --- school (train) ------------------------------------------------------------------------------
_SCHOOL_SCHEMA = """
CREATE TABLE teachers (
    teacher_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    department TEXT NOT NULL,
    hire_year INTEGER
);
CREATE TABLE courses (
    course_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    department TEXT NOT NULL,
    credits INTEGER NOT NULL,
    teacher_id INTEGER REFERENCES teachers(teacher_id)
);
CREATE TABLE students (
    student_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    birth_year INTEGER,
    major TEXT,
    city TEXT
);
CREATE TABLE enrollments (
    student_id INTEGER REFERENCES students(student_id),
    course_id INTEGER REFERENCES courses(course_id),
    semester TEXT NOT NULL,
    grade REAL,
    PRIMARY KEY (student_id, course_id, semester)
);
"""
_DEPARTMENTS = ("Mathematics", "Physics", "History", "Biology", "Literature", "Economics")
_SEMESTERS = ("2023-spring", "2023-fall", "2024-spring", "2024-fall")


def _fill_school(db: sqlite3.Connection, rng: random.Random) -> None:
    db.executemany(
        "INSERT INTO teachers VALUES (?, ?, ?, ?)",
        [(i, _name(rng), rng.choice(_DEPARTMENTS), rng.randint(1995, 2022)) for i in range(1, 21)],
    )
    titles = _titles(rng, 30)
    db.executemany(
        "INSERT INTO courses VALUES (?, ?, ?, ?, ?)",
        [
            (i, titles[i - 1], rng.choice(_DEPARTMENTS), rng.choice((2, 3, 4, 5)), rng.randint(1, 20))
            for i in range(1, 31)
        ],
    )
    db.executemany(
        "INSERT INTO students VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                rng.choice(_FIRST),
                rng.choice(_LAST),
                rng.randint(1998, 2006),
                rng.choice(_DEPARTMENTS),
                rng.choice(_CITIES),
            )
            for i in range(1, 201)
        ],
    )
    rows = set()
    while len(rows) < 600:
        rows.add((rng.randint(1, 200), rng.randint(1, 30), rng.choice(_SEMESTERS)))
    db.executemany(
        "INSERT INTO enrollments VALUES (?, ?, ?, ?)",
        [(s, c, sem, round(rng.uniform(50, 100), 1)) for s, c, sem in sorted(rows)],
    )


def _school_items(db: sqlite3.Connection, rng: random.Random) -> Iterator[_Item]:
    def pick(sql: str) -> list:
        return [r[0] for r in db.execute(sql)]

    for major in rng.sample(_DEPARTMENTS, INSTANCES):
        yield _Item(
            f"How many students major in {major}?",
            "",
            f"SELECT COUNT(*) FROM students WHERE major = '{major}'",
            "simple",
        )
    for teacher in rng.sample(
        pick(
            "SELECT DISTINCT t.name FROM teachers t JOIN courses c ON c.teacher_id = t.teacher_id ORDER BY t.name"
        ),
        INSTANCES,
    ):
        yield _Item(
            f"List the titles of the courses taught by {teacher}.",
            "",
            f"SELECT c.title FROM courses AS c JOIN teachers AS t ON c.teacher_id = t.teacher_id WHERE t.name = '{teacher}'",
            "simple",
        )
    for title in rng.sample(
        pick(
            "SELECT DISTINCT c.title FROM courses c JOIN enrollments e ON e.course_id = c.course_id ORDER BY c.title"
        ),
        INSTANCES,
    ):
        yield _Item(
            f"What is the average grade of the students enrolled in '{title}'?",
            "average grade refers to AVG(grade)",
            f"SELECT AVG(e.grade) FROM enrollments AS e JOIN courses AS c ON e.course_id = c.course_id WHERE c.title = '{title}'",
            "moderate",
        )
    for city in rng.sample(_CITIES, INSTANCES):
        from_city = (
            "FROM students AS s JOIN enrollments AS e ON e.student_id = s.student_id "
            f"WHERE s.city = '{city}' GROUP BY s.student_id ORDER BY AVG(e.grade) DESC"
        )
        yield _Item(
            f"Which student from {city} has the highest average grade? Give the first and last name.",
            "highest average grade refers to MAX(AVG(grade))",
            f"SELECT s.first_name, s.last_name {from_city} LIMIT 1",
            "challenging",
            tie_check=f"SELECT AVG(e.grade) {from_city} LIMIT 2",
        )
    for dept, credits in [(rng.choice(_DEPARTMENTS), rng.choice((2, 3))) for _ in range(INSTANCES)]:
        yield _Item(
            f"How many courses of the {dept} department are worth more than {credits} credits?",
            "",
            f"SELECT COUNT(*) FROM courses WHERE department = '{dept}' AND credits > {credits}",
            "simple",
        )
    for semester in rng.sample(_SEMESTERS, INSTANCES):
        grouped = (
            "FROM courses AS c JOIN enrollments AS e ON e.course_id = c.course_id "
            f"WHERE e.semester = '{semester}' GROUP BY c.course_id ORDER BY COUNT(*) DESC"
        )
        yield _Item(
            f"Which course had the most enrollments in the {semester} semester? Give its title.",
            f"the {semester} semester refers to semester = '{semester}'",
            f"SELECT c.title {grouped} LIMIT 1",
            "moderate",
            tie_check=f"SELECT COUNT(*) {grouped} LIMIT 2",
        )
    for year in rng.sample(range(1999, 2005), INSTANCES):
        yield _Item(
            f"How many distinct students born before {year} took a Mathematics course?",
            "a Mathematics course refers to department = 'Mathematics'",
            "SELECT COUNT(DISTINCT s.student_id) FROM students AS s JOIN enrollments AS e ON e.student_id = s.student_id "
            f"JOIN courses AS c ON c.course_id = e.course_id WHERE s.birth_year < {year} AND c.department = 'Mathematics'",
            "moderate",
        )
    for major in rng.sample(_DEPARTMENTS, INSTANCES):
        yield _Item(
            f"How many {major} students have never enrolled in any course?",
            "never enrolled refers to no row in enrollments",
            f"SELECT COUNT(*) FROM students WHERE major = '{major}' AND student_id NOT IN (SELECT student_id FROM enrollments)",
            "moderate",
        )


# --- shop (train) --------------------------------------------------------------------------------
_SHOP_SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    city TEXT,
    country TEXT,
    signup_date TEXT
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price REAL NOT NULL,
    stock INTEGER NOT NULL
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(customer_id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE order_items (
    order_id INTEGER REFERENCES orders(order_id),
    product_id INTEGER REFERENCES products(product_id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
"""
_CATEGORIES = {
    "Kitchen": ("Kettle", "Toaster", "Pan", "Knife Set", "Blender", "Mug", "Teapot", "Grater"),
    "Garden": ("Hose", "Rake", "Shovel", "Planter", "Sprinkler", "Gloves", "Pruner", "Lantern"),
    "Office": (
        "Stapler",
        "Notebook",
        "Desk Lamp",
        "Pen Set",
        "Binder",
        "Monitor Stand",
        "Chair Mat",
        "Planner",
    ),
    "Sports": (
        "Yoga Mat",
        "Dumbbell",
        "Jump Rope",
        "Water Bottle",
        "Tennis Racket",
        "Helmet",
        "Backpack",
        "Ball",
    ),
}
_STATUSES = ("delivered", "shipped", "cancelled", "pending")


def _fill_shop(db: sqlite3.Connection, rng: random.Random) -> None:
    customers = []
    for i in range(1, 121):
        name = _name(rng)
        email = f"{name.lower().replace(' ', '.')}{i}@example.com"
        country = rng.choice(_COUNTRIES)
        customers.append((i, name, email, rng.choice(_CITIES), country, _date(rng, range(2019, 2024))))
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customers)
    products = []
    for category, names in _CATEGORIES.items():
        for base in names:
            for grade in ("Basic", "Deluxe"):
                price = round(rng.uniform(5, 60) * (2.5 if grade == "Deluxe" else 1), 2)
                products.append((len(products) + 1, f"{grade} {base}", category, price, rng.randint(0, 120)))
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?)", products)
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?)",
        [
            (i, rng.randint(1, 120), _date(rng, range(2021, 2025)), rng.choice(_STATUSES))
            for i in range(1, 301)
        ],
    )
    items = []
    for order in range(1, 301):
        for product in rng.sample(range(1, len(products) + 1), rng.randint(1, 4)):
            items.append((order, product, rng.randint(1, 5), products[product - 1][3]))
    db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", items)


def _shop_items(db: sqlite3.Connection, rng: random.Random) -> Iterator[_Item]:
    for country in rng.sample(_COUNTRIES, INSTANCES):
        yield _Item(
            f"How many customers are from {country}?",
            "",
            f"SELECT COUNT(*) FROM customers WHERE country = '{country}'",
            "simple",
        )
    for order in rng.sample(range(1, 301), INSTANCES):
        yield _Item(
            f"What is the total value of order number {order}?",
            "total value = SUM(quantity * unit_price)",
            f"SELECT SUM(quantity * unit_price) FROM order_items WHERE order_id = {order}",
            "simple",
        )
    for category in rng.sample(sorted(_CATEGORIES), INSTANCES):
        ranked = f"FROM products WHERE category = '{category}' ORDER BY price DESC"
        yield _Item(
            f"What is the name of the most expensive product in the {category} category?",
            "most expensive refers to MAX(price)",
            f"SELECT name {ranked} LIMIT 1",
            "simple",
            tie_check=f"SELECT price {ranked} LIMIT 2",
        )
    for status, year in [(rng.choice(_STATUSES), rng.randint(2021, 2024)) for _ in range(INSTANCES)]:
        yield _Item(
            f"How many orders placed in {year} have the status '{status}'?",
            f"placed in {year} refers to strftime('%Y', order_date) = '{year}'",
            f"SELECT COUNT(*) FROM orders WHERE status = '{status}' AND strftime('%Y', order_date) = '{year}'",
            "moderate",
        )
    for city in rng.sample(_CITIES, INSTANCES):
        yield _Item(
            f"List the names of the customers living in {city} who have placed at least one order.",
            "",
            f"SELECT DISTINCT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id WHERE c.city = '{city}'",
            "moderate",
        )
    names = [r[0] for r in db.execute("SELECT name FROM products ORDER BY product_id")]
    for product in rng.sample(names, INSTANCES):
        yield _Item(
            f"How many units of the product '{product}' were sold in delivered orders?",
            "units refers to SUM(quantity); delivered orders refers to status = 'delivered'",
            "SELECT SUM(oi.quantity) FROM order_items AS oi JOIN products AS p ON p.product_id = oi.product_id "
            f"JOIN orders AS o ON o.order_id = oi.order_id WHERE p.name = '{product}' AND o.status = 'delivered'",
            "moderate",
        )
    for country in rng.sample(_COUNTRIES, INSTANCES):
        grouped = (
            "FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id "
            f"WHERE c.country = '{country}' GROUP BY c.city ORDER BY COUNT(o.order_id) DESC"
        )
        yield _Item(
            f"Among customers from {country}, the customers of which city placed the most orders?",
            "",
            f"SELECT c.city {grouped} LIMIT 1",
            "challenging",
            tie_check=f"SELECT COUNT(o.order_id) {grouped} LIMIT 2",
        )
    for stock in rng.sample(range(5, 40, 5), INSTANCES):
        yield _Item(
            f"List the names and prices of the products with fewer than {stock} items in stock.",
            "",
            f"SELECT name, price FROM products WHERE stock < {stock}",
            "simple",
        )


# --- library (dev) -------------------------------------------------------------------------------
_LIBRARY_SCHEMA = """
CREATE TABLE authors (
    author_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    birth_year INTEGER
);
CREATE TABLE books (
    book_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    author_id INTEGER REFERENCES authors(author_id),
    genre TEXT,
    published_year INTEGER,
    pages INTEGER
);
CREATE TABLE members (
    member_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    join_year INTEGER,
    city TEXT
);
CREATE TABLE loans (
    loan_id INTEGER PRIMARY KEY,
    book_id INTEGER REFERENCES books(book_id),
    member_id INTEGER REFERENCES members(member_id),
    loan_date TEXT NOT NULL,
    return_date TEXT
);
"""
_GENRES = ("Mystery", "Fantasy", "Poetry", "Biography", "Science", "Romance")


def _fill_library(db: sqlite3.Connection, rng: random.Random) -> None:
    authors = [(i, _name(rng), rng.choice(_COUNTRIES), rng.randint(1920, 1990)) for i in range(1, 41)]
    db.executemany("INSERT INTO authors VALUES (?, ?, ?, ?)", authors)
    titles = _titles(rng, 200)
    db.executemany(
        "INSERT INTO books VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                titles[i - 1],
                rng.randint(1, 40),
                rng.choice(_GENRES),
                rng.randint(1950, 2023),
                rng.randint(80, 900),
            )
            for i in range(1, 201)
        ],
    )
    db.executemany(
        "INSERT INTO members VALUES (?, ?, ?, ?)",
        [(i, _name(rng), rng.randint(2010, 2024), rng.choice(_CITIES)) for i in range(1, 151)],
    )
    loans = []
    for i in range(1, 501):
        start = _date(rng, range(2020, 2025))
        returned = (
            None if rng.random() < 0.2 else start[:8] + f"{min(28, int(start[8:]) + rng.randint(0, 20)):02d}"
        )
        loans.append((i, rng.randint(1, 200), rng.randint(1, 150), start, returned))
    db.executemany("INSERT INTO loans VALUES (?, ?, ?, ?, ?)", loans)


def _library_items(db: sqlite3.Connection, rng: random.Random) -> Iterator[_Item]:
    authors = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT a.name FROM authors a JOIN books b ON b.author_id = a.author_id ORDER BY a.name"
        )
    ]
    for author in rng.sample(authors, INSTANCES):
        yield _Item(
            f"How many books written by {author} does the library have?",
            "",
            f"SELECT COUNT(*) FROM books AS b JOIN authors AS a ON a.author_id = b.author_id WHERE a.name = '{author}'",
            "simple",
        )
    for genre, year in [(rng.choice(_GENRES), rng.randint(1990, 2015)) for _ in range(INSTANCES)]:
        yield _Item(
            f"List the titles of the {genre} books published after {year}.",
            "",
            f"SELECT title FROM books WHERE genre = '{genre}' AND published_year > {year}",
            "simple",
        )
    for city in rng.sample(_CITIES, INSTANCES):
        grouped = (
            "FROM members AS m JOIN loans AS l ON l.member_id = m.member_id "
            f"WHERE m.city = '{city}' GROUP BY m.member_id ORDER BY COUNT(*) DESC"
        )
        yield _Item(
            f"Which member from {city} borrowed books the most times? Give the name.",
            "",
            f"SELECT m.name {grouped} LIMIT 1",
            "moderate",
            tie_check=f"SELECT COUNT(*) {grouped} LIMIT 2",
        )
    lent = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT b.title FROM books b JOIN loans l ON l.book_id = b.book_id ORDER BY b.title"
        )
    ]
    for title in rng.sample(lent, INSTANCES):
        yield _Item(
            f"How many times has '{title}' been borrowed without being returned yet?",
            "not returned yet refers to return_date IS NULL",
            f"SELECT COUNT(*) FROM loans AS l JOIN books AS b ON b.book_id = l.book_id WHERE b.title = '{title}' AND l.return_date IS NULL",
            "moderate",
        )
    for country in rng.sample(_COUNTRIES, INSTANCES):
        yield _Item(
            f"What is the average number of pages of the books by authors from {country}?",
            "average number of pages refers to AVG(pages)",
            f"SELECT AVG(b.pages) FROM books AS b JOIN authors AS a ON a.author_id = b.author_id WHERE a.country = '{country}'",
            "moderate",
        )
    for year in rng.sample(range(2020, 2025), INSTANCES):
        grouped = (
            "FROM books AS b JOIN loans AS l ON l.book_id = b.book_id "
            f"WHERE l.loan_date LIKE '{year}-%' GROUP BY b.genre ORDER BY COUNT(*) DESC"
        )
        yield _Item(
            f"Which genre was borrowed the most in {year}?",
            f"in {year} refers to loan_date LIKE '{year}-%'",
            f"SELECT b.genre {grouped} LIMIT 1",
            "challenging",
            tie_check=f"SELECT COUNT(*) {grouped} LIMIT 2",
        )
    for city, year in [(rng.choice(_CITIES), rng.randint(2012, 2022)) for _ in range(INSTANCES)]:
        yield _Item(
            f"How many members from {city} joined in {year} or later?",
            "",
            f"SELECT COUNT(*) FROM members WHERE city = '{city}' AND join_year >= {year}",
            "simple",
        )
    titles = [r[0] for r in db.execute("SELECT title FROM books ORDER BY book_id")]
    for title in rng.sample(titles, INSTANCES):
        yield _Item(
            f"Who wrote the book '{title}', and in which country was the author born?",
            "",
            f"SELECT a.name, a.country FROM authors AS a JOIN books AS b ON b.author_id = a.author_id WHERE b.title = '{title}'",
            "simple",
        )


_Fill = Callable[[sqlite3.Connection, random.Random], None]
_Items = Callable[[sqlite3.Connection, random.Random], Iterator[_Item]]
DATABASES: dict[str, tuple[str, str, _Fill, _Items]] = {
    # db_id: (split, schema, fill, question templates)
    "school": ("train", _SCHOOL_SCHEMA, _fill_school, _school_items),
    "shop": ("train", _SHOP_SCHEMA, _fill_shop, _shop_items),
    "library": ("dev", _LIBRARY_SCHEMA, _fill_library, _library_items),
}


def build(root: Path) -> None:
    """Write the dataset into `root` (which must not exist yet) in BIRD's layout."""
    questions: dict[str, list[dict[str, object]]] = {"train": [], "dev": []}
    for db_id, (split, schema, fill, items) in DATABASES.items():
        folder = root / split / f"{split}_databases" / db_id
        folder.mkdir(parents=True)
        path = folder / f"{db_id}.sqlite"
        rng = random.Random(f"agentgym-bird-{db_id}-{VERSION}")
        with sqlite3.connect(path) as db:
            db.executescript(schema)
            fill(db, rng)
        db.close()
        with sqlite3.connect(path) as db:
            for item in items(db, rng):
                if _usable(path, item):
                    entry: dict[str, object] = {
                        "db_id": db_id,
                        "question": item.question,
                        "evidence": item.evidence,
                        "SQL": item.sql,
                    }
                    if split == "dev":  # BIRD's dev file numbers questions and grades them
                        entry = {"question_id": len(questions["dev"]), **entry, "difficulty": item.difficulty}
                    questions[split].append(entry)
        db.close()
    for split, entries in questions.items():
        (root / split / f"{split}.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")


def _usable(path: Path, item: _Item) -> bool:
    limits = Limits(time_s=10.0, max_rows=10_000)
    rows = run_query(path, item.sql, limits)
    if not rows or all(v is None for row in rows for v in row):
        return False
    if item.tie_check:
        top = run_query(path, item.tie_check, limits)
        if len(top) > 1 and top[0][0] == top[1][0]:
            return False
    return True


def _cache_roots() -> list[Path]:
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentgym"
    return [PACKAGE_DATA / "bird", user / "bird"]


def ensure(root: Path | None = None) -> Path:
    """The folder holding the generated dataset, building it first if needed."""
    candidates = [root] if root is not None else _cache_roots()
    for parent in candidates:
        folder = parent / f"synthetic-v{VERSION}"
        if (folder / "dev" / "dev.json").is_file():
            return folder
    for parent in candidates:
        folder = parent / f"synthetic-v{VERSION}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=parent, prefix=".building-"))
        except OSError:
            continue
        try:
            build(staging / "data")
            # A rename is atomic: readers see the whole dataset or none of it.
            os.replace(staging / "data", folder)
        except OSError:
            if not (folder / "dev" / "dev.json").is_file():  # not built by a concurrent process
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("built BIRD-format data", extra={"folder": str(folder)})
        return folder
    raise OSError(f"no writable cache folder for the BIRD data among {', '.join(map(str, candidates))}")


if __name__ == "__main__":
    print(ensure(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
