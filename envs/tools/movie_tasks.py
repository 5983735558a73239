"""Task generation for the Movie env (movie.py): templates, each solved with the env's own tools."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from agentgym.envs.tools import movie_world as world
from agentgym.envs.tools.base import ToolTask
from agentgym.envs.tools.movie import Movie
from agentgym.envs.tools.planner import Planner, TaskRejected


# --- tasks ---------------------------------------------------------------------------------------
class _Ask:
    def __init__(self, p: Planner) -> None:
        self.p = p
        self.db = world.database()

    def movie_id(self, title: str) -> str:
        hits = self.p("get_search_movie", movie_name=title)
        return str(hits[0]["id"])

    def person_id(self, name: str) -> str:
        hits = self.p("get_search_person", person_name=name)
        return str(hits[0]["id"])


def _movies(rng: random.Random, k: int = 1) -> list[dict[str, Any]]:
    """Films whose title finds themselves (not a more popular namesake)."""
    db = world.database()
    out: list[dict[str, Any]] = []
    while len(out) < k:
        m = db.movies[rng.choice(sorted(db.movies))]
        if db.search_movie(m["title"]) is m and m not in out:
            out.append(m)
    return out


def _person_findable(p: dict[str, Any]) -> bool:
    return world.database().search_person(p["name"]) is p


Template = Callable[[random.Random, _Ask], tuple[str, Any, int | None]]


def _director(m: dict[str, Any]) -> dict[str, Any]:
    db = world.database()
    return db.people[next(c["id"] for c in m["crew"] if c["job"] == "Director")]


def _t_director_birthplace(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    if _director(m)["place_of_birth"] is None:
        raise TaskRejected("no birthplace")
    crew = a.p("get_movie_crew", movie_id=a.movie_id(m["title"]))["crew"]
    did = next(c["id"] for c in crew if c["job"] == "Director")
    place = a.p("get_person_details", person_id=did)["place_of_birth"]
    goal = f'Where was the director of "{m["title"]}" born? Answer with the place of birth as a string.'
    return goal, place, None


def _t_release_date(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    d = a.p("get_movie_details", movie_id=a.movie_id(m["title"]))["release_date"]
    return f'What is the release date of "{m["title"]}"? Answer in the format YYYY-MM-DD.', d, None


def _t_role(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    c = rng.choice(m["cast"][:10])
    actor = a.db.people[c["id"]]
    cast = a.p("get_movie_cast", movie_id=a.movie_id(m["title"]))["cast"]
    character = next(x["character"] for x in cast if x["id"] == actor["id"])
    goal = f'Which character did {actor["name"]} play in "{m["title"]}"? Answer with the character\'s name.'
    return goal, character, None


def _t_writer(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    writers = [c for c in m["crew"] if c["job"] in ("Writer", "Screenplay")]
    if len(writers) != 1:
        raise TaskRejected("not one writer")
    crew = a.p("get_movie_crew", movie_id=a.movie_id(m["title"]))["crew"]
    name = next(c["name"] for c in crew if c["job"] in ("Writer", "Screenplay"))
    return f'Who wrote "{m["title"]}"? Answer with the writer\'s name.', name, None


def _t_genres(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    genres = a.p("get_movie_details", movie_id=a.movie_id(m["title"]))["genres"]
    goal = f'What are the genres of "{m["title"]}"? Answer with an array of genre names.'
    return goal, sorted(g["name"] for g in genres), None


def _t_companies(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    comps = a.p("get_movie_production_companies", movie_id=a.movie_id(m["title"]))["production_companies"]
    goal = f'Which companies produced "{m["title"]}"? Answer with an array of company names.'
    return goal, sorted(c["name"] for c in comps), None


def _t_directed_by(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    truth = _director(m)
    asked = truth if rng.random() < 0.5 else a.db.people[rng.choice(sorted(_director_ids()))]
    crew = a.p("get_movie_crew", movie_id=a.movie_id(m["title"]))["crew"]
    yes = any(c["job"] == "Director" and c["name"] == asked["name"] for c in crew)
    goal = f'Was "{m["title"]}" directed by {asked["name"]}? Answer "Yes" or "No".'
    return goal, "Yes" if yes else "No", None


@lru_cache(maxsize=1)
def _director_ids() -> frozenset[int]:
    return frozenset(
        c["id"] for m in world.database().movies.values() for c in m["crew"] if c["job"] == "Director"
    )


def _t_twitter(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    c = rng.choice(m["cast"][:10])
    if a.db.people[c["id"]]["twitter_id"] is None:
        raise TaskRejected("no twitter")
    cast = a.p("get_movie_cast", movie_id=a.movie_id(m["title"]))["cast"]
    pid = next(x["id"] for x in cast if x["character"] == c["character"])
    handle = a.p("get_person_external_ids", person_id=pid)["twitter_id"]
    goal = (
        f'What is the Twitter id of the actor who played {c["character"]} in "{m["title"]}"? '
        "Answer with the id as a string."
    )
    return goal, handle, None


def _t_other_role(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    c = rng.choice(m["cast"][:10])
    actor = a.db.people[c["id"]]
    others = [(mid, ch) for mid, ch in actor["cast"][:10] if mid != m["id"]]
    if not others:
        raise TaskRejected("one film only")
    other_id, _ = rng.choice(others)
    other = a.db.movies[other_id]
    if a.db.search_movie(other["title"]) is not other:
        raise TaskRejected("ambiguous title")
    cast = a.p("get_movie_cast", movie_id=a.movie_id(m["title"]))["cast"]
    pid = next(x["id"] for x in cast if x["character"] == c["character"])
    roles = a.p("get_person_cast", person_id=pid)["cast"]
    character = next(r["character"] for r in roles if r["id"] == other_id)
    goal = (
        f'The actor who played {c["character"]} in "{m["title"]}": which character did they play in '
        f'"{other["title"]}"? Answer with the character\'s name.'
    )
    return goal, character, None


def _t_costars(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    first = a.db.people[rng.choice(m["cast"][:10])["id"]]
    if rng.random() < 0.5:
        second = a.db.people[rng.choice([c for c in m["cast"][:10] if c["id"] != first["id"]])["id"]]
    else:
        second = a.db.people[rng.choice(sorted(a.db.people))]
        if not second["cast"] or second is first:
            raise TaskRejected("not an actor")
    if not (_person_findable(first) and _person_findable(second)):
        raise TaskRejected("ambiguous name")
    ids = []
    for p in (first, second):
        credits = a.p("get_person_cast", person_id=a.person_id(p["name"]))["cast"]
        ids.append({c["id"] for c in credits})
    goal = f'Have {first["name"]} and {second["name"]} acted in the same movie? Answer "Yes" or "No".'
    return goal, "Yes" if ids[0] & ids[1] else "No", None


def _t_budget(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    if not m["budget"]:
        raise TaskRejected("no budget")
    budget = a.p("get_movie_details", movie_id=a.movie_id(m["title"]))["budget"]
    return f'What was the budget of "{m["title"]}", in US dollars? Answer with a number.', budget, 0


def _t_more_revenue(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    m1, m2 = _movies(rng, 2)
    r1 = a.p("get_movie_details", movie_id=a.movie_id(m1["title"]))["revenue"]
    r2 = a.p("get_movie_details", movie_id=a.movie_id(m2["title"]))["revenue"]
    if r1 == r2:
        raise TaskRejected("tie")
    goal = f'Which movie made more revenue, "{m1["title"]}" or "{m2["title"]}"? Answer with its title.'
    return goal, m1["title"] if r1 > r2 else m2["title"], None


def _t_directed_count(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    p = a.db.people[rng.choice(sorted(_director_ids()))]
    if not _person_findable(p):
        raise TaskRejected("ambiguous name")
    crew = a.p("get_person_crew", person_id=a.person_id(p["name"]))["crew"]
    count = sum(1 for c in crew if c["job"] == "Director")
    return f"How many movies has {p['name']} directed? Answer with a number.", count, 0


def _t_lead_birthday(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    cast = a.p("get_movie_cast", movie_id=a.movie_id(m["title"]))["cast"]
    birthday = a.p("get_person_details", person_id=str(cast[0]["id"]))["birthday"]
    goal = f'When was the first-billed actor of "{m["title"]}" born? Answer in the format YYYY-MM-DD.'
    return goal, birthday, None


def _t_countries(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    rows = a.p("get_movie_production_countries", movie_id=a.movie_id(m["title"]))["production_countries"]
    goal = f'In which countries was "{m["title"]}" produced? Answer with an array of country names.'
    return goal, sorted(c["name"] for c in rows), None


def _t_keyword(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    keyword = rng.choice(m["keywords"]) if rng.random() < 0.5 else rng.choice(world._KEYWORDS)
    words = a.p("get_movie_keywords", movie_id=a.movie_id(m["title"]))["keywords"]
    goal = f'Is "{keyword}" one of the keywords of the movie "{m["title"]}"? Answer "Yes" or "No".'
    return goal, "Yes" if keyword in words else "No", None


def _t_alt_title(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    alts = [t for t in m["alternative_titles"] if t["iso_3166_1"] != "US"]
    if not alts:
        raise TaskRejected("no alternative title")
    want = rng.choice(alts)["iso_3166_1"]
    titles = a.p("get_movie_alternative_titles", movie_id=a.movie_id(m["title"]))["titles"]
    title = next(t["title"] for t in titles if t["iso_3166_1"] == want)
    goal = f'What is the alternative title of "{m["title"]}" in the country with code {want}? Answer with the title.'
    return goal, title, None


def _t_better_rated(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    m1, m2 = _movies(rng, 2)
    v1 = a.p("get_movie_details", movie_id=a.movie_id(m1["title"]))["vote_average"]
    v2 = a.p("get_movie_details", movie_id=a.movie_id(m2["title"]))["vote_average"]
    if v1 == v2:
        raise TaskRejected("tie")
    goal = (
        f'Which movie has the higher average vote, "{m1["title"]}" or "{m2["title"]}"? Answer with its title.'
    )
    return goal, m1["title"] if v1 > v2 else m2["title"], None


def _t_imdb(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    p = a.db.people[rng.choice(m["cast"][:5])["id"]]
    if not _person_findable(p):
        raise TaskRejected("ambiguous name")
    imdb = a.p("get_person_external_ids", person_id=a.person_id(p["name"]))["imdb_id"]
    return f"What is the IMDb id of {p['name']}? Answer with the id as a string.", imdb, None


def _t_earliest_film(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    p = a.db.people[rng.choice(m["cast"][:10])["id"]]
    if not _person_findable(p) or not 2 <= len(p["cast"]) <= 6:
        raise TaskRejected("unsuitable actor")
    roles = a.p("get_person_cast", person_id=a.person_id(p["name"]))["cast"]
    dates = []
    for r in roles:
        dates.append((a.p("get_movie_details", movie_id=str(r["id"]))["release_date"], r["title"]))
    if len({d for d, _ in dates}) != len(dates):
        raise TaskRejected("tie")
    goal = f"Which movie with {p['name']} in the cast was released first? Answer with its title."
    return goal, min(dates)[1], None


def _t_composer(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    if not any(c["job"] == "Original Music Composer" for c in m["crew"]):
        raise TaskRejected("no composer")
    crew = a.p("get_movie_crew", movie_id=a.movie_id(m["title"]))["crew"]
    name = next((c["name"] for c in crew if c["job"] == "Original Music Composer"), None)
    if name is None:
        raise TaskRejected("composer not in the first 10")
    return f'Who composed the music of "{m["title"]}"? Answer with the composer\'s name.', name, None


def _t_cast_size_over(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    (m,) = _movies(rng)
    c = rng.choice(m["cast"][:10])
    cast = a.p("get_movie_cast", movie_id=a.movie_id(m["title"]))["cast"]
    position = next(i for i, x in enumerate(cast) if x["character"] == c["character"]) + 1
    goal = (
        f'In the billing order of "{m["title"]}", at which position is the actor who plays '
        f"{c['character']}? Answer with a number (1 for the first-billed actor)."
    )
    return goal, position, 0


TEMPLATES: tuple[tuple[str, Template], ...] = (
    ("director_birthplace", _t_director_birthplace),
    ("release_date", _t_release_date),
    ("role", _t_role),
    ("writer", _t_writer),
    ("genres", _t_genres),
    ("companies", _t_companies),
    ("directed_by", _t_directed_by),
    ("twitter", _t_twitter),
    ("other_role", _t_other_role),
    ("costars", _t_costars),
    ("budget", _t_budget),
    ("more_revenue", _t_more_revenue),
    ("directed_count", _t_directed_count),
    ("lead_birthday", _t_lead_birthday),
    ("countries", _t_countries),
    ("keyword", _t_keyword),
    ("alt_title", _t_alt_title),
    ("better_rated", _t_better_rated),
    ("imdb", _t_imdb),
    ("earliest_film", _t_earliest_film),
    ("composer", _t_composer),
    ("billing_position", _t_cast_size_over),
)


@lru_cache(maxsize=4096)
def build_task(task_id: int) -> ToolTask:
    name, template = TEMPLATES[task_id % len(TEMPLATES)]
    rng = random.Random(f"movie/{task_id}")
    for _ in range(200):
        planner = Planner(Movie())
        try:
            goal, answer, decimals = template(rng, _Ask(planner))
        except TaskRejected:
            continue
        return planner.task(goal, answer, template=name, decimals=decimals)
    raise RuntimeError(f"movie task {task_id}: no valid instance of template {name!r}")
