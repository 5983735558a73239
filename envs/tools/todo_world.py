"""The TODOList env's offline backend: a Todoist-like store in SQLite, one database per episode.

The original reset a real Todoist account to a fixed set of projects before each task. Here each
task's account (projects, tasks with descriptions, due dates, durations and priorities, the user's
date and city) is generated from the task id, loaded into a fresh SQLite file in a temporary
directory, changed by the agent's calls for the length of the episode, and deleted at its end.
As in Todoist's REST API, completed tasks leave the active list: the task tools no longer find
them.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

# Project themes: name -> tasks (content, description fields, typical minutes).
THEMES: dict[str, list[tuple[str, dict[str, str], int]]] = {
    "Home Renovation": [
        (
            "Paint the guest bedroom",
            {
                "Place": "Guest bedroom, second floor",
                "Color": "sage green",
                "Supplies": "two gallons of paint, rollers and tape",
            },
            240,
        ),
        (
            "Fix the leaking kitchen faucet",
            {"Place": "Kitchen", "Parts": "cartridge and O-rings", "Tip": "Turn off the water supply first."},
            60,
        ),
        ("Get quotes for new windows", {"Contact": "Brightview Windows", "Budget": "$4,000"}, 45),
        (
            "Replace the hallway light fixtures",
            {"Place": "Upstairs hallway", "Supplies": "three LED fixtures and a voltage tester"},
            90,
        ),
        (
            "Clean out the garage",
            {"Place": "Garage", "Tip": "Sort items into keep, donate and recycle piles."},
            180,
        ),
    ],
    "Job Search": [
        ("Update my resume", {"Focus": "project management experience", "Format": "two pages, PDF"}, 120),
        ("Apply to data analyst roles", {"Target": "five applications", "Sites": "company career pages"}, 90),
        (
            "Prepare for the Acme Corp interview",
            {
                "Place": "Acme Corp office, 5th floor",
                "Interviewer": "Dana Whitfield",
                "Tip": "Review the STAR method.",
            },
            60,
        ),
        ("Send thank-you emails", {"Recipients": "everyone I interviewed with this week"}, 20),
        (
            "Practice coding exercises",
            {"Topic": "SQL joins and window functions", "Goal": "ten problems"},
            75,
        ),
    ],
    "Fitness Plan": [
        ("Go for a morning run", {"Place": "Riverside Park loop", "Distance": "5 km"}, 40),
        ("Attend yoga class", {"Place": "Lotus Studio, room B", "Instructor": "Maya Chen"}, 60),
        (
            "Meal prep for the week",
            {"Place": "Home kitchen", "Menu": "chicken, rice and roasted vegetables"},
            120,
        ),
        ("Swim laps", {"Place": "Community pool", "Goal": "20 laps"}, 45),
        (
            "Book a physiotherapy session",
            {"Contact": "Dr. Alan Reyes", "Reason": "knee pain after long runs"},
            15,
        ),
    ],
    "Trip to Lisbon": [
        ("Book flights", {"Dates": "leave Friday morning, return Monday night", "Budget": "$600"}, 30),
        ("Reserve a hotel in Alfama", {"Place": "Alfama district", "Nights": "three"}, 30),
        ("Buy travel insurance", {"Coverage": "medical and trip cancellation"}, 20),
        (
            "Plan a day trip to Sintra",
            {"Place": "Sintra", "Tip": "Take the early train from Rossio station."},
            45,
        ),
        ("Exchange currency", {"Place": "bank branch on Oak Street", "Amount": "300 euros"}, 30),
    ],
    "Garden": [
        (
            "Plant tomato seedlings",
            {"Place": "raised bed by the fence", "Spacing": "60 cm between plants"},
            90,
        ),
        ("Prune the apple tree", {"Place": "back yard", "Tool": "bypass pruners"}, 60),
        ("Build a compost bin", {"Place": "behind the shed", "Materials": "four pallets and wire"}, 150),
        ("Mow the lawn", {"Place": "front and back yard"}, 45),
        ("Order flower bulbs", {"Shop": "Greenleaf Nursery", "Varieties": "tulips and daffodils"}, 15),
    ],
    "Wedding Planning": [
        ("Send the invitations", {"Guests": "120", "Tip": "Include the RSVP card."}, 90),
        (
            "Taste cakes at the bakery",
            {"Place": "Sugarloaf Bakery, Main Street", "Flavors": "lemon and vanilla"},
            60,
        ),
        ("Choose the reception playlist", {"Style": "jazz for dinner, pop for dancing"}, 45),
        ("Confirm the photographer", {"Contact": "Lena Ortiz Photography", "Hours": "six"}, 15),
        ("Finalize the seating chart", {"Tables": "twelve round tables"}, 120),
    ],
    "Online Data Science Course": [
        ("Watch the week 3 lectures", {"Topic": "linear regression", "Length": "four videos"}, 90),
        (
            "Finish the regression assignment",
            {"Dataset": "housing prices", "Tip": "Check the residual plots."},
            150,
        ),
        ("Join the study group call", {"Place": "video call", "Host": "Priya Nair"}, 60),
        (
            "Read chapter 5 of the textbook",
            {"TextBook": "Practical Statistics for Analysts", "Pages": "112-140"},
            75,
        ),
        ("Submit the final project proposal", {"Topic": "predicting bike rentals", "Length": "one page"}, 45),
    ],
    "Book Club": [
        (
            "Finish reading the novel",
            {"Book": "The Lighthouse Keeper's Daughter", "Pages": "the last 80 pages"},
            150,
        ),
        ("Prepare discussion questions", {"Number": "six questions"}, 40),
        ("Host the monthly meeting", {"Place": "my living room", "Snacks": "cheese board and lemonade"}, 120),
        ("Vote on next month's book", {"Shortlist": "three mysteries"}, 10),
    ],
    "Team Offsite": [
        ("Book the venue", {"Place": "Harbor View Conference Center", "Capacity": "40 people"}, 45),
        ("Plan team-building activities", {"Ideas": "escape room and a cooking class"}, 90),
        ("Order catering", {"Vendor": "Green Fork Catering", "Diet": "two vegetarian, one gluten-free"}, 30),
        ("Send the agenda", {"Recipients": "the whole product team"}, 20),
        ("Arrange transportation", {"Vehicle": "one 40-seat coach", "Pickup": "8:00 at the main office"}, 30),
    ],
    "Household Chores": [
        ("Do the laundry", {"Place": "basement laundry room", "Tip": "Wash the towels on hot."}, 90),
        ("Vacuum the living room", {"Place": "Living room"}, 30),
        ("Take out the recycling", {"Day": "pickup is early in the morning"}, 10),
        ("Clean the bathroom", {"Place": "Upstairs bathroom", "Supplies": "bleach and a scrub brush"}, 45),
        ("Water the house plants", {"Place": "kitchen window and balcony"}, 15),
    ],
    "Car Maintenance": [
        ("Get an oil change", {"Place": "QuickLube on 3rd Avenue", "Oil": "5W-30 synthetic"}, 45),
        ("Rotate the tires", {"Place": "Tire Town", "Tip": "Ask them to check the pressure too."}, 60),
        ("Renew the registration", {"Place": "DMV website", "Fee": "$85"}, 20),
        ("Wash the car", {"Place": "self-service car wash"}, 30),
        ("Check the brake pads", {"Place": "home driveway", "Tool": "flashlight and caliper"}, 40),
    ],
    "Birthday Party": [
        (
            "Order the birthday cake",
            {"Shop": "Sugarloaf Bakery", "Flavor": "chocolate with strawberries"},
            15,
        ),
        ("Buy decorations", {"Place": "Party City", "Theme": "outer space"}, 60),
        ("Send invites to friends", {"Guests": "fifteen kids and their parents"}, 30),
        ("Plan party games", {"Games": "treasure hunt and musical chairs"}, 45),
        ("Pick up the balloons", {"Place": "Party City", "Count": "two dozen"}, 20),
    ],
    "Science Fair Project": [
        (
            "Design the plant growth experiment",
            {"Place": "school greenhouse", "Variables": "light and water"},
            120,
        ),
        (
            "Collect measurement data",
            {"Schedule": "every morning for two weeks", "Tool": "ruler and notebook"},
            30,
        ),
        ("Make the presentation poster", {"Size": "A1", "Supplies": "markers and printed charts"}, 180),
        ("Write the project report", {"Length": "five pages", "Tip": "Include a photo of each stage."}, 150),
    ],
    "Picnic Preparation": [
        ("Buy picnic food", {"Place": "farmers market", "List": "bread, cheese, fruit and lemonade"}, 60),
        ("Pack the picnic basket", {"Items": "plates, cups, napkins and a blanket"}, 20),
        ("Choose the picnic spot", {"Place": "Willow Lake park, north lawn"}, 30),
        ("Invite the neighbors", {"Guests": "the Parkers and the Lees"}, 15),
    ],
}
COLORS = ("charcoal", "berry_red", "blue", "green", "orange", "grape", "teal")
CITIES = (
    "Boston",
    "Chicago",
    "Denver",
    "Seattle",
    "Austin",
    "Toronto",
    "London",
    "Sydney",
    "Lisbon",
    "Berlin",
)


@dataclass
class Account:
    current_date: str
    current_location: str
    projects: list[dict[str, Any]]  # id, name, order, color, is_favorite
    tasks: list[
        dict[str, Any]
    ]  # id, project_id, order, content, description, due_date, duration, duration_unit, priority


def account(seed: str) -> Account:
    """The account for a seed: 4 or 5 projects of 3-5 tasks around the user's current date."""
    rng = random.Random(seed)
    today = date(2024, 1, 8) + timedelta(days=rng.randrange(330))
    names = rng.sample(sorted(THEMES), rng.choice((4, 5)))
    ids = rng.sample(range(10**9, 10**10), 40)
    projects, tasks = [], []
    for pi, name in enumerate(names):
        pid = str(ids.pop())
        projects.append(
            {"id": pid, "name": name, "order": pi + 1, "color": rng.choice(COLORS), "is_favorite": False}
        )
        for ti, (content, fields, minutes) in enumerate(
            rng.sample(THEMES[name], rng.randint(3, min(5, len(THEMES[name]))))
        ):
            tasks.append(
                {
                    "id": str(ids.pop()),
                    "project_id": pid,
                    "order": ti + 1,
                    "content": content,
                    "description": "\n".join(f"- {k}: {v}" for k, v in fields.items()),
                    "due_date": (today + timedelta(days=rng.randint(-3, 21))).isoformat(),
                    "duration": minutes + rng.choice((0, 0, 15, -15 if minutes > 30 else 15)),
                    "duration_unit": "minute",
                    "priority": rng.choice((1, 1, 2, 2, 3, 4)),
                }
            )
    return Account(today.isoformat(), rng.choice(CITIES), projects, tasks)


class Store:
    """One episode's to-do database (SQLite)."""

    def __init__(self, path: str, data: Account) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=MEMORY")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(
            """
            CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, ord INTEGER NOT NULL,
                                   color TEXT NOT NULL, is_favorite INTEGER NOT NULL);
            CREATE TABLE tasks (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id),
                                ord INTEGER NOT NULL, content TEXT NOT NULL, description TEXT NOT NULL,
                                due_date TEXT NOT NULL, duration INTEGER NOT NULL,
                                duration_unit TEXT NOT NULL, priority INTEGER NOT NULL,
                                is_completed INTEGER NOT NULL DEFAULT 0);
            """
        )
        with self.db:
            self.db.executemany(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?)",
                [(p["id"], p["name"], p["order"], p["color"], int(p["is_favorite"])) for p in data.projects],
            )
            self.db.executemany(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    (t["id"], t["project_id"], t["order"], t["content"], t["description"], t["due_date"],
                     t["duration"], t["duration_unit"], t["priority"])
                    for t in data.tasks
                ],
            )  # fmt: skip

    def close(self) -> None:
        self.db.close()

    # --- reads -----------------------------------------------------------------------------------
    def projects(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, ord, color, name, is_favorite FROM projects ORDER BY ord, id")
        return [
            {"id": r[0], "order": r[1], "color": r[2], "name": r[3], "is_favorite": bool(r[4])} for r in rows
        ]

    def project(self, project_id: str) -> dict[str, Any] | None:
        return next((p for p in self.projects() if p["id"] == project_id), None)

    def tasks(self, project_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, ord, content, is_completed, priority, due_date, project_id FROM tasks WHERE is_completed = 0"
        args: tuple[str, ...] = ()
        if project_id is not None:
            sql += " AND project_id = ?"
            args = (project_id,)
        rows = self.db.execute(sql + " ORDER BY project_id, ord, id", args)
        return [
            {
                "id": r[0],
                "order": r[1],
                "content": r[2],
                "is_completed": bool(r[3]),
                "priority": r[4],
                "due_date": r[5],
            }
            for r in rows
        ]

    def task_row(self, task_id: str) -> dict[str, Any] | None:
        r = self.db.execute(
            "SELECT id, ord, content, is_completed, priority, due_date, description, duration, duration_unit "
            "FROM tasks WHERE id = ? AND is_completed = 0",
            (task_id,),
        ).fetchone()
        if r is None:
            return None
        return {
            "id": r[0], "order": r[1], "content": r[2], "is_completed": bool(r[3]), "priority": r[4],
            "due_date": r[5], "description": r[6], "duration": r[7], "duration_unit": r[8],
        }  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """Everything a task can change, for comparing with the expected end state."""
        tasks = self.db.execute(
            "SELECT id, project_id, due_date, priority, is_completed FROM tasks ORDER BY id"
        ).fetchall()
        projects = self.db.execute("SELECT id, is_favorite FROM projects ORDER BY id").fetchall()
        return {"tasks": [list(t) for t in tasks], "projects": [[p[0], bool(p[1])] for p in projects]}

    def completed_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM tasks WHERE is_completed = 1").fetchone()[0])

    # --- writes ----------------------------------------------------------------------------------
    def set_favorite(self, project_id: str, value: bool) -> None:
        with self.db:
            self.db.execute("UPDATE projects SET is_favorite = ? WHERE id = ?", (int(value), project_id))

    def set_due(self, task_id: str, due: str) -> None:
        with self.db:
            self.db.execute("UPDATE tasks SET due_date = ? WHERE id = ?", (due, task_id))

    def complete(self, task_id: str) -> None:
        with self.db:
            self.db.execute("UPDATE tasks SET is_completed = 1 WHERE id = ?", (task_id,))

    def delete(self, task_id: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
