"""Movie: answer questions about films and people with 14 TMDB-style tools (AgentBoard's
tool-query Movie, served by AgentGym as `movie`; max 12 rounds).

Tools, names, arguments and result shapes as the original's (which wrapped TMDB's API): search a
film or a person (first hit), a film's details, production companies and countries, top-10 cast,
crew (directors, producers and writers first, 10 at most), keywords, alternative titles and
translations, a person's details, first-10 acting and crew credits and external ids, plus
`check_valid_actions` and `finish(answer)`. An unknown id gets TMDB's 404 text. The backend is a
generated, cross-consistent database (movie_world.py).

Tasks: ids 0-237 are the test set (the original's size), 238-999 a training set; each id picks a
question template and the films or people it asks about, and is solved with the tools
(planner.py), so gold answers and subgoals are what the tools return.

With `movie.data` (the original's movie.jsonl) task id N is the original's task N: its question and
gold answer, asked of our generated database, which does not hold the answer (TMDB's films); the
env says so in `task_set` and has no expert for these tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgym.envs.registry import register
from agentgym.envs.tools import movie_world as world
from agentgym.envs.tools.base import AnswerToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.original import OriginalData
from agentgym.envs.tools.toolkit import Param

TEST_TASKS = 238
TASKS = 1000
NOT_FOUND = (
    '{"success":false,"status_code":34,"status_message":"The resource you requested could not be found."}'
)
# Fields the original dropped from results before comparing them with subgoals.
_VOLATILE = ("overview", "biography", "vote_average", "genres", "revenue", "budget", "release_date")

_MOVIE_ID = (Param("movie_id", "string", "The ID of the movie."),)
_PERSON_ID = (Param("person_id", "string", "The ID of the person."),)

_INTRO = """\
You are an agent that answers questions about movies and the people who make them by calling the \
tools of a movie database. Get ids from get_search_movie and get_search_person; never make them up."""

_NOTES = "When you know the answer, call finish with it, in the form the question asks for."

_EXAMPLE = """\
Goal: In which year was the movie "The Quiet Harbor" released? Answer with the year as a number.
Thought:
I need the movie's id first.

Action:
get_search_movie with Action Input: {"movie_name": "The Quiet Harbor"}
Observation: [{'id': 41235, 'overview': 'A drama film about friendship, starring Ann Lee.', 'title': 'The Quiet Harbor'}]
Thought:
The details include the release date.

Action:
get_movie_details with Action Input: {"movie_id": "41235"}
Observation: {'title': 'The Quiet Harbor', 'budget': 12000000, 'genres': [{'id': 18, 'name': 'Drama'}], 'revenue': 30500000, 'vote_average': 7.1, 'release_date': '1998-04-17'}
Thought:
It was released in 1998.

Action:
finish with Action Input: {"answer": 1998}
Observation: 1998"""


@register
class Movie(AnswerToolEnv):
    name = "movie"
    description = (
        "Answer film questions with 14 TMDB-style tools (AgentBoard tool-query Movie); offline database."
    )
    intro = _INTRO
    notes = _NOTES
    example = _EXAMPLE
    max_rounds = 12
    task_count = TASKS
    splits = {"test": [range(0, TEST_TASKS)], "train": [range(TEST_TASKS, TASKS)]}
    success_threshold = 1.0

    builtin_task_set = "built-in film questions on a generated database; not the original's"
    original_expert_gap = "their answers are live TMDB data, which the generated film database does not hold"

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        world.database()

    def make_task(self, task_id: int) -> ToolTask:
        from agentgym.envs.tools.movie_tasks import build_task

        return build_task(task_id)

    def clean(self, tool_name: str, result: Any) -> Any:
        if isinstance(result, dict):
            return {k: v for k, v in result.items() if k not in _VOLATILE}
        if isinstance(result, list):
            return [
                {k: v for k, v in r.items() if k not in _VOLATILE} if isinstance(r, dict) else r
                for r in result
            ]
        return result

    # --- lookups ---------------------------------------------------------------------------------
    @staticmethod
    def _movie(movie_id: str) -> dict[str, Any]:
        db = world.database()
        key = movie_id.strip()
        if not key.isdigit() or int(key) not in db.movies:
            raise ToolError(NOT_FOUND)
        return db.movies[int(key)]

    @staticmethod
    def _person(person_id: str) -> dict[str, Any]:
        db = world.database()
        key = person_id.strip()
        if not key.isdigit() or int(key) not in db.people:
            raise ToolError(NOT_FOUND)
        return db.people[int(key)]

    # --- tools -----------------------------------------------------------------------------------
    @tool(
        "Search for a movie by its title and return the best match.",
        (Param("movie_name", "string", "The title of the movie to search for."),),
        "- id : the movie's ID.\n- overview : a short description of the movie.\n- title : the movie's title.",
    )
    def get_search_movie(self, movie_name: str) -> list[dict[str, Any]]:
        m = world.database().search_movie(movie_name)
        return [] if m is None else [{"id": m["id"], "overview": m["overview"], "title": m["title"]}]

    @tool(
        "Get details of a movie by its ID.",
        _MOVIE_ID,
        "- title, budget, genres, revenue, vote_average, release_date.",
    )
    def get_movie_details(self, movie_id: str) -> dict[str, Any]:
        m = self._movie(movie_id)
        return {
            "title": m["title"],
            "budget": m["budget"],
            "genres": m["genres"],
            "revenue": m["revenue"],
            "vote_average": m["vote_average"],
            "release_date": m["release_date"],
        }

    @tool(
        "Get the production companies of a movie by its ID.",
        _MOVIE_ID,
        "- production_companies : the companies.",
    )
    def get_movie_production_companies(self, movie_id: str) -> dict[str, Any]:
        m = self._movie(movie_id)
        companies = world.database().companies
        return {"production_companies": [dict(companies[c]) for c in m["production_companies"]]}

    @tool(
        "Get the production countries of a movie by its ID.",
        _MOVIE_ID,
        "- production_countries : the countries.",
    )
    def get_movie_production_countries(self, movie_id: str) -> dict[str, Any]:
        return {"production_countries": [dict(c) for c in self._movie(movie_id)["production_countries"]]}

    @tool(
        "Get the top 10 cast members of a movie by its ID.",
        _MOVIE_ID,
        "- cast : up to 10 cast members, in billing order.",
    )
    def get_movie_cast(self, movie_id: str) -> dict[str, Any]:
        people = world.database().people
        cast = self._movie(movie_id)["cast"][:10]
        return {
            "cast": [
                {"id": c["id"], "name": people[c["id"]]["name"], "character": c["character"]} for c in cast
            ]
        }

    @tool(
        "Get up to 10 crew members of a movie by its ID; directors, producers and writers come first.",
        _MOVIE_ID,
        "- crew : up to 10 crew members with their jobs.",
    )
    def get_movie_crew(self, movie_id: str) -> dict[str, Any]:
        people = world.database().people
        crew = self._movie(movie_id)["crew"]
        first = [c for c in crew if c["job"] in ("Director", "Producer", "Writer")]
        rest = [c for c in crew if c not in first]
        return {
            "crew": [
                {"id": c["id"], "name": people[c["id"]]["name"], "job": c["job"]} for c in (first + rest)[:10]
            ]
        }

    @tool("Get the keywords of a movie by its ID.", _MOVIE_ID, "- keywords : the keywords.")
    def get_movie_keywords(self, movie_id: str) -> dict[str, Any]:
        return {"keywords": list(self._movie(movie_id)["keywords"])}

    @tool(
        "Search for a person by name and return the best match.",
        (Param("person_name", "string", "The name of the person to search for."),),
        "- id : the person's ID.\n- name : the person's name.",
    )
    def get_search_person(self, person_name: str) -> list[dict[str, Any]]:
        p = world.database().search_person(person_name)
        return [] if p is None else [{"id": p["id"], "name": p["name"]}]

    @tool("Get details of a person by their ID.", _PERSON_ID, "- name, biography, birthday, place_of_birth.")
    def get_person_details(self, person_id: str) -> dict[str, Any]:
        p = self._person(person_id)
        return {
            "name": p["name"],
            "biography": p["biography"],
            "birthday": p["birthday"],
            "place_of_birth": p["place_of_birth"],
        }

    @tool(
        "Get the first 10 acting roles of a person by their ID.",
        _PERSON_ID,
        "- cast : movies the person acted in, with the character.",
    )
    def get_person_cast(self, person_id: str) -> dict[str, Any]:
        movies = world.database().movies
        cast = self._person(person_id)["cast"][:10]
        return {"cast": [{"id": mid, "title": movies[mid]["title"], "character": ch} for mid, ch in cast]}

    @tool(
        "Get the first 10 crew jobs of a person by their ID.",
        _PERSON_ID,
        "- crew : movies the person worked on, with the job.",
    )
    def get_person_crew(self, person_id: str) -> dict[str, Any]:
        movies = world.database().movies
        crew = self._person(person_id)["crew"][:10]
        return {"crew": [{"id": mid, "title": movies[mid]["title"], "job": job} for mid, job in crew]}

    @tool(
        "Get the external ids of a person by their ID.",
        _PERSON_ID,
        "- imdb_id, facebook_id, instagram_id, twitter_id (None when the person has none).",
    )
    def get_person_external_ids(self, person_id: str) -> dict[str, Any]:
        p = self._person(person_id)
        return {k: p[k] for k in ("imdb_id", "facebook_id", "instagram_id", "twitter_id")}

    @tool(
        "Get the alternative titles of a movie by its ID.",
        _MOVIE_ID,
        "- id : the movie's ID.\n- titles : alternative titles, by country.",
    )
    def get_movie_alternative_titles(self, movie_id: str) -> dict[str, Any]:
        m = self._movie(movie_id)
        return {"id": m["id"], "titles": [dict(t) for t in m["alternative_titles"]]}

    @tool(
        "Get the translations of a movie's description by its ID (Dutch, Chinese, English, German, Russian, Japanese).",
        _MOVIE_ID,
        "- id : the movie's ID.\n- translations : the translations, by country and language.",
    )
    def get_movie_translation(self, movie_id: str) -> dict[str, Any]:
        m = self._movie(movie_id)
        out = []
        for country, language, native, english in m["translations"]:
            overview = m["overview"] if language == "en" else ""
            out.append(
                {
                    "iso_3166_1": country,
                    "iso_639_1": language,
                    "name": native,
                    "english_name": english,
                    "data": {"homepage": "", "overview": overview, "runtime": m["runtime"], "tagline": ""},
                }
            )
        return {"id": m["id"], "translations": out}
