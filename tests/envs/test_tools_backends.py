"""The tool envs' offline backends are consistent across tools, and behave like the services
they stand in for (open-meteo, TMDB, the DBLP graphs, Todoist, a spreadsheet)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from agentgym.envs import registry
from agentgym.envs.tools import academia_world, movie_world, sheet_world, todo_world, weather_world
from agentgym.envs.tools.sheet_world import Sheet, Workbook


def _call(env, text: str):
    return env.step(text)


# --- weather ----------------------------------------------------------------------------------------
def test_geocoder_finds_real_cities_most_populous_first() -> None:
    g = weather_world.geocoder()
    paris = g.search("Paris")
    assert paris[0].country_code == "FR" and abs(paris[0].latitude - 48.85) < 0.1
    assert len(paris) == 2 and paris[1].population <= paris[0].population  # Paris, France; Paris, Texas
    assert len(g.search("Springfield")) == 3
    assert g.search("new york")[0].name == "New York City"  # an English name of a big city
    assert g.search("Zzyzxq") == []
    assert len(weather_world.task_cities()) > 80


def test_one_days_weather_agrees_across_history_forecast_and_current() -> None:
    env = registry.make("weather")
    env.set_context({"current_date": "2023-06-15", "current_location": "Denver"})
    lat, lon = 39.73915, -104.9847
    forecast = env.get_temp_forecast(lat, lon, "2023-06-16", "2023-06-20")
    current = env.get_current_temp(lat, lon, "2023-06-18")
    env.set_context({"current_date": "2023-07-01", "current_location": "Denver"})
    history = env.get_historical_temp(lat + 0.004, lon - 0.004, "2023-06-16", "2023-06-20")  # same grid cell
    assert forecast["daily"] == history["daily"]
    assert current["daily"]["temperature_2m_mean"][0] == history["daily"]["temperature_2m_mean"][2]
    for t_max, t_min in zip(
        history["daily"]["temperature_2m_max"], history["daily"]["temperature_2m_min"], strict=True
    ):
        assert t_min < t_max
    rain = env.get_historical_rain(lat, lon, "2023-01-01", "2023-01-31")["daily"]["rain_sum"]
    snow = env.get_historical_snow(lat, lon, "2023-01-01", "2023-01-31")["daily"]["snowfall_sum"]
    assert len(rain) == len(snow) == 31 and all(r >= 0 for r in rain) and all(s >= 0 for s in snow)
    assert history["latitude"] == 39.7 and history["longitude"] == -105.0  # the grid cell's coordinates


def test_weather_service_rules() -> None:
    env = registry.make("weather")
    env.reset(0, 0, {})
    today = env.current_date.isoformat()
    cases = {
        f'get_historical_temp with Action Input: {{"latitude": 40, "longitude": -74, "start_date": "{today}", "end_date": "{today}"}}': "earlier than the current date",
        f'get_rain_forecast with Action Input: {{"latitude": 40, "longitude": -74, "start_date": "{today}", "end_date": "{today}"}}': "later than the current date",
        'get_historical_snow with Action Input: {"latitude": 40, "longitude": -74, "start_date": "2020-01-01", "end_date": "2020-03-01"}': "at most 30 days",
        'get_historical_snow with Action Input: {"latitude": 40, "longitude": -74, "start_date": "2020-01-09", "end_date": "2020-01-01"}': "not be earlier than start_date",
        'get_historical_snow with Action Input: {"latitude": 40, "longitude": -74, "start_date": "Jan 1", "end_date": "2020-01-01"}': "YYYY-MM-DD",
        'get_elevation with Action Input: {"latitude": 140, "longitude": 0}': "between -90 and 90",
    }
    for action, message in cases.items():
        out = env.step(action)
        assert message in out.observation and not out.done and out.reward == 0
    assert env.get_air_quality_level(20) == "good" and env.get_air_quality_level(20.5) == "fair"
    assert (
        env.get_air_quality_level(100) == "very poor" and env.get_air_quality_level(101) == "extremely poor"
    )
    # Geodesic distance on WGS-84: Paris-London is about 343.9 km.
    assert env.get_distance(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.9, abs=0.5)


# --- movie ------------------------------------------------------------------------------------------
def test_movie_database_is_cross_consistent() -> None:
    db = movie_world.database()
    assert len(db.movies) >= 500 and len(db.people) >= 1500
    for m in db.movies.values():
        for c in m["cast"]:
            assert [m["id"], c["character"]] in db.people[c["id"]]["cast"]
        for c in m["crew"]:
            assert [m["id"], c["job"]] in db.people[c["id"]]["crew"]
        assert len({c["character"] for c in m["cast"]}) == len(m["cast"])
    for p in db.people.values():
        assert len(p["cast"]) <= movie_world.MAX_CREDITS and len(p["crew"]) <= movie_world.MAX_CREDITS
        for mid, character in p["cast"]:
            assert {"id": p["id"], "character": character} in [
                {"id": c["id"], "character": c["character"]} for c in db.movies[mid]["cast"]
            ]
        for mid, _ in p["cast"] or p["crew"]:
            if db.movies[mid]["title"] in p["biography"]:
                break
        else:
            pytest.fail(f"{p['name']}'s biography names none of their films")


def test_movie_tools_agree_with_each_other() -> None:
    env = registry.make("movie")
    env.reset(0, 0, {})
    title = sorted(movie_world.database().movies.values(), key=lambda m: m["id"])[3]["title"]
    hit = env.get_search_movie(title)[0]
    assert hit["title"] == title
    cast = env.get_movie_cast(str(hit["id"]))["cast"]
    actor = cast[0]
    assert env.get_search_person(actor["name"])[0]["id"] == actor["id"]
    credits = env.get_person_cast(str(actor["id"]))["cast"]
    assert {"id": hit["id"], "title": title, "character": actor["character"]} in credits
    crew = env.get_movie_crew(str(hit["id"]))["crew"]
    assert crew[0]["job"] == "Director" and len(crew) <= 10
    assert "404" not in str(env.get_movie_details(str(hit["id"])))
    out = env.step('get_movie_details with Action Input: {"movie_id": "1"}')
    assert "could not be found" in out.observation and not out.done


# --- academia ---------------------------------------------------------------------------------------
def test_citation_graph_is_consistent() -> None:
    g = academia_world.graph()
    assert len(g.papers) >= 1500 and len(g.authors) >= 500
    cited = Counter(t for refs in g.cites.values() for t in refs)
    for title, p in g.papers.items():
        assert p["n_citation"] >= cited[title]
        for ref in g.cites[title]:
            assert g.papers[ref]["year"] < p["year"]
        for a in p["authors"]:
            assert title in g.authors[a]["papers"]
    for a, others in g.coauthored.items():
        for b, papers in others.items():
            assert g.coauthored[b][a] == papers
            assert all(a in g.papers[t]["authors"] and b in g.papers[t]["authors"] for t in papers)
    assert any(name.endswith("_2") for name in g.authors)  # DBLP-style homonyms


def test_academia_graphs_must_be_loaded_and_nodes_named_exactly() -> None:
    env = registry.make("academia")
    env.reset(0, 0, {})
    title = sorted(academia_world.graph().papers)[0]
    out = env.step(f'paperNodeCheck with Action Input: {{"node": "{title}"}}')
    assert "Please load the PaperNet first" in out.observation
    env.step("loadPaperNet with Action Input: {}")
    assert (
        "There is no node named"
        in env.step(f'paperNodeCheck with Action Input: {{"node": "{title.lower()}"}}').observation
    )
    assert "'year'" in env.step(f'paperNodeCheck with Action Input: {{"node": "{title}"}}').observation
    # The original's alternative spelling of neighbourCheck.
    out = env.step(f'neighborCheck with Action Input: {{"graph": "PaperNet", "node": "{title}"}}')
    assert out.observation.startswith("Observation: [")


# --- todo ---------------------------------------------------------------------------------------
def test_todo_store_behaves_like_the_rest_api(tmp_path: Path) -> None:
    data = todo_world.account("todo-account/0")
    store = todo_world.Store(str(tmp_path / "t.sqlite3"), data)
    project = store.projects()[0]
    tasks = store.tasks(project["id"])
    assert [t["order"] for t in tasks] == sorted(t["order"] for t in tasks)
    first = tasks[0]["id"]
    store.complete(first)
    assert first not in [t["id"] for t in store.tasks(project["id"])]  # completed tasks leave the list
    assert store.task_row(first) is None and store.completed_count() == 1
    store.delete(tasks[1]["id"])
    snap = store.snapshot()
    assert tasks[1]["id"] not in [t[0] for t in snap["tasks"]]
    store.close()
    assert (tmp_path / "t.sqlite3").exists()


def test_todo_episode_store_persists_within_and_is_deleted_after() -> None:
    env = registry.make("todo")
    env.reset(0, 0, {})
    assert env.tmp is not None and Path(env.tmp).exists()
    folder = env.tmp
    project = env.get_projects()[0]
    task = env.get_tasks(project["id"])[0]
    env.step(f'update_task with Action Input: {{"task_id": "{task["id"]}", "due_date": "2030-01-02"}}')
    assert env.get_tasks(project["id"])[0]["due_date"] == "2030-01-02"
    out = env.step(f'update_task with Action Input: {{"task_id": "{task["id"]}", "due_date": "next week"}}')
    assert "YYYY-MM-DD" in out.observation
    env.close()
    assert not Path(folder).exists()


# --- sheet ------------------------------------------------------------------------------------------
def _sheet() -> Sheet:
    s = Sheet("S")
    for c, h in enumerate(["Name", "Price", "Qty", "Total"], start=1):
        s.set(1, c, h)
    for r, (n, p, q) in enumerate([("b", 2.5, 4), ("a", 10, 3), ("c", 1.5, 2)], start=2):
        s.set(r, 1, n)
        s.set(r, 2, p)
        s.cells[(r, 2)].fmt = "0.00"
        s.set(r, 3, q)
        s.set(r, 4, f"=PRODUCT(B{r},C{r})")
    return s


def test_sheet_formulas_and_number_formats() -> None:
    s = _sheet()
    assert s.all_values()[1] == ["b", "2.50", "4", "10"]
    s.set(5, 4, "=SUM(D2:D4)")
    s.set(6, 4, "=AVERAGE(B2:B4)*2-1")
    s.set(7, 4, "=MINUS(D5,D2)/0")
    s.set(8, 4, "=MAX(A2:A4)")
    s.set(9, 4, "=NOPE(1)")
    assert [s.display(r, 4) for r in range(5, 10)] == ["43", "8.333333333", "#DIV/0!", "0", "#NAME?"]
    assert sheet_world.show(0.2, "0.00%") == "20.00%" and sheet_world.show(1234.5, "#,##0.00") == "1,234.50"
    assert sheet_world.formula_result(s, "=MINUS(B3,B2)") == "7.5"
    s.set(10, 4, "=D10+1")  # a cycle
    assert s.display(10, 4) == "#REF!"
    s.set(11, 4, "=SUM(A1:AAA5)")  # beyond the sheet's columns
    assert s.display(11, 4) == "#REF!"
    s.set(2, 3, 5)  # a change reaches the formulas that depend on it
    assert s.display(2, 4) == "12.5" and s.display(5, 4) == "45.5"


def test_sheet_formulas_over_formulas_stay_fast() -> None:
    import time

    s = Sheet("S")
    for c in range(1, 16):  # each sums a big range and every formula before it
        s.set(1, c, f"=SUM(A2:Z200)+SUM(A1:{sheet_world.col_letter(max(1, c - 1))}1)")
    start = time.perf_counter()
    s.all_values()
    assert time.perf_counter() - start < 2.0


def test_sheet_sort_moves_formulas_with_their_rows() -> None:
    s = _sheet()
    s.frozen_rows = 1
    s.sort(4, descending=True)
    assert [row[0] for row in s.all_values()[1:]] == ["a", "b", "c"]
    assert s.cell(2, 4).value == "=PRODUCT(B2,C2)" and s.display(2, 4) == "30"
    s.sort(1, descending=False)
    assert [row[0] for row in s.all_values()] == ["Name", "a", "b", "c"]
    s.frozen_rows = 0
    s.sort(3, descending=False)  # without a frozen header, the header is sorted too: text after numbers
    assert s.all_values()[-1][0] == "Name"


def test_sheet_insert_and_delete_shift_references() -> None:
    s = _sheet()
    s.set(5, 4, "=SUM(D2:D4)")
    s.insert_rows(2, [["z", 1, 1]])
    assert s.cell(6, 4).value == "=SUM(D3:D5)" and s.display(6, 4) == "43"
    assert s.cell(2, 2).fmt == "General"  # inherits the header row's format
    s.delete_rows([3])  # a range losing a row shrinks, as in a spreadsheet
    assert s.cell(5, 4).value == "=SUM(D3:D4)" and s.display(5, 4) == "33"
    s.delete_rows([3, 4])
    assert s.cell(3, 4).value == "=SUM(#REF!)" and s.display(3, 4) == "#REF!"
    t = _sheet()
    t.set(5, 4, "=SUM(B2:C4)")
    t.delete_cols([2])
    assert t.cell(2, 3).value == "=PRODUCT(#REF!,B2)" and t.display(2, 3) == "#REF!"
    assert t.cell(5, 3).value == "=SUM(B2:B4)" and t.display(5, 3) == "9"


def test_sheet_merge_shows_the_top_left_value_everywhere() -> None:
    s = _sheet()
    s.merge(1, 1, 1, 2)
    assert s.all_values()[0][:2] == ["Name", "Name"]
    with pytest.raises(sheet_world.SheetError):
        s.merge(1, 2, 2, 2)
    s.merge(2, 3, 3, 3)
    with pytest.raises(sheet_world.SheetError, match="merged"):
        s.sort(1, descending=False)


def test_workbook_round_trips_through_xlsx(tmp_path: Path) -> None:
    s = _sheet()
    s.set_note(2, 1, "check this")
    s.merge(1, 3, 1, 4)
    s.frozen_rows = 1
    book = Workbook([s, Sheet("Other")])
    path = str(tmp_path / "w.xlsx")
    book.save(path)
    back = Workbook.load(path)
    t = back.sheets["S"]
    assert list(back.sheets) == ["S", "Other"]
    assert t.all_values() == s.all_values()
    assert t.cell(2, 1).note == "check this" and t.cell(3, 4).value == "=PRODUCT(B3,C3)"
    assert t.merges == [(1, 3, 1, 4)] and t.frozen_rows == 1
    from openpyxl import load_workbook

    assert load_workbook(path)["S"]["D2"].value == "=PRODUCT(B2,C2)"  # a real spreadsheet formula


def test_sheet_episode_files_live_in_a_temp_dir_for_the_episode() -> None:
    env = registry.make("sheet")
    env.reset(0, 0, {})
    assert env.path is not None and Path(env.path).exists()
    folder = Path(env.path).parent
    out = env.step("get_all_values with Action Input: {}")
    assert "Please open a sheet" in out.observation
    env.step(f'open_sheet with Action Input: {{"name": "{env.task.context["sheet"]}"}}')
    before = Path(env.path).stat().st_mtime_ns
    env.step('update_cell with Action Input: {"position": "A1", "value": "Item"}')
    from openpyxl import load_workbook

    assert load_workbook(env.path)[env.task.context["sheet"]]["A1"].value == "Item"
    assert Path(env.path).stat().st_mtime_ns >= before
    env.close()
    assert not folder.exists()


def test_generated_dates_are_deterministic() -> None:
    assert weather_world.day(10.0, 20.0, date(2023, 1, 1)) == weather_world.day(
        10.04, 19.96, date(2023, 1, 1)
    )
    assert todo_world.account("todo-account/3") == todo_world.account("todo-account/3")
