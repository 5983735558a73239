"""Task generation for the Weather env (weather.py): templates, each solved with the env's own tools."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from agentgym.envs.tools import weather_world as world
from agentgym.envs.tools.base import ToolTask
from agentgym.envs.tools.planner import Planner, TaskRejected
from agentgym.envs.tools.weather import Weather


# --- tasks ---------------------------------------------------------------------------------------
class _Ask:
    """Solving helpers over a Planner, with the user's context."""

    def __init__(self, p: Planner, env: Weather) -> None:
        self.p = p
        self.env = env
        self.today = env.current_date

    def date(self) -> date:
        return date.fromisoformat(self.p("get_user_current_date"))

    def here(self) -> str:
        return str(self.p("get_user_current_location"))

    def coords(self, city: str) -> tuple[float, float]:
        top = self.p("get_latitude_longitude", name=city)["results"][0]
        return top["latitude"], top["longitude"]

    def series(
        self, tool_name: str, where: tuple[float, float], start: date, end: date, key: str
    ) -> list[Any]:
        r = self.p(
            tool_name,
            latitude=where[0],
            longitude=where[1],
            start_date=start.isoformat(),
            end_date=end.isoformat(),
        )
        return list(r["daily"][key])

    def on(self, tool_name: str, where: tuple[float, float], when: date, key: str) -> Any:
        r = self.p(tool_name, latitude=where[0], longitude=where[1], current_date=when.isoformat())
        return r["daily"][key][0]


def _last_year(d: date) -> date:
    return d.replace(year=d.year - 1, day=min(d.day, 28) if d.month == 2 else d.day)


def _other_city(rng: random.Random, *not_these: str) -> str:
    cities = [c for c in world.task_cities() if c not in not_these]
    return rng.choice(cities)


Template = Callable[[random.Random, _Ask], tuple[str, Any, int | None]]


def _t_avg_yesterday(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    y = a.date() - timedelta(days=1)
    mean = a.series("get_historical_temp", where, y, y, "temperature_2m_mean")[0]
    return (
        "What was the average temperature yesterday where I am? Answer in degrees Celsius, as a number.",
        mean,
        1,
    )


def _t_max_last_year(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    today = a.date()
    where = a.coords(a.here())
    d = _last_year(today)
    t = a.series("get_historical_temp", where, d, d, "temperature_2m_max")[0]
    return (
        "What was the highest temperature in my city on this day last year? Answer in degrees Celsius.",
        t,
        1,
    )


def _t_min_today(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    t = a.on("get_current_temp", where, a.date(), "temperature_2m_min")
    return "What is the lowest temperature today in my city? Answer in degrees Celsius, as a number.", t, 1


def _t_compare_last_year(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    now = a.on("get_current_temp", where, today, "temperature_2m_mean")
    then = a.series(
        "get_historical_temp", where, _last_year(today), _last_year(today), "temperature_2m_mean"
    )[0]
    answer = "higher" if now > then else "lower" if now < then else "same"
    goal = (
        "Is today's average temperature here higher or lower than on the same day last year? "
        "Answer with 'higher', 'lower' or 'same'."
    )
    return goal, answer, None


def _t_forecast_mean(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    city = _other_city(rng)
    today = a.date()
    where = a.coords(city)
    means = a.series(
        "get_temp_forecast",
        where,
        today + timedelta(days=1),
        today + timedelta(days=7),
        "temperature_2m_mean",
    )
    goal = (
        f"What is the average of the daily mean temperatures forecast for {city} over the next 7 days "
        "(tomorrow through a week from today)? Answer in degrees Celsius, rounded to one decimal place."
    )
    return goal, round(statistics.fmean(means), 1), 1


def _t_forecast_range(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    n = rng.choice((3, 4, 5))
    where = a.coords(a.here())
    today = a.date()
    start, end = today + timedelta(days=1), today + timedelta(days=n)
    r = a.p(
        "get_temp_forecast",
        latitude=where[0],
        longitude=where[1],
        start_date=start.isoformat(),
        end_date=end.isoformat(),
    )
    lows, highs = r["daily"]["temperature_2m_min"], r["daily"]["temperature_2m_max"]
    goal = (
        f"I'm going hiking near home over the next {n} days (starting tomorrow). What temperature range "
        "is forecast? Answer as an array [lowest minimum, highest maximum] in degrees Celsius."
    )
    return goal, [min(lows), max(highs)], 1


def _t_rain_vs_last_year(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    now = a.on("get_current_rain", where, today, "rain_sum")
    then = a.series("get_historical_rain", where, _last_year(today), _last_year(today), "rain_sum")[0]
    if now == then:
        raise TaskRejected("equal rain")
    goal = "Is there more rain today in my city than on the same day last year? Answer 'Yes' or 'No'."
    return goal, "Yes" if now > then else "No", None


def _t_rain_total(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    n = rng.choice((7, 10, 14, 21))
    where = a.coords(a.here())
    today = a.date()
    rain = a.series(
        "get_historical_rain", where, today - timedelta(days=n), today - timedelta(days=1), "rain_sum"
    )
    goal = (
        f"How much rain fell in my city over the past {n} days, not counting today? "
        "Answer in millimetres, rounded to one decimal place."
    )
    return goal, round(sum(rain), 1), 1


def _t_snow_days(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    city = _other_city(rng)
    today = a.date()
    where = a.coords(city)
    snow = a.series(
        "get_snow_forecast", where, today + timedelta(days=1), today + timedelta(days=7), "snowfall_sum"
    )
    days = sum(1 for s in snow if s > 0)
    if days == 0 and rng.random() < 0.8:
        raise TaskRejected("mostly ask where it snows")
    goal = f"On how many of the next 7 days is snowfall forecast in {city}? Answer with a number."
    return goal, days, 0


def _t_elevation_gap(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    home = a.here()
    city = _other_city(rng, home)
    h = a.coords(home)
    c = a.coords(city)
    eh = a.p("get_elevation", latitude=h[0], longitude=h[1])["elevation"][0]
    ec = a.p("get_elevation", latitude=c[0], longitude=c[1])["elevation"][0]
    goal = (
        f"I'm thinking of moving to {city}. How much higher is it than my current city? Answer the "
        f"elevation of {city} minus that of my city, in metres."
    )
    return goal, ec - eh, 0


def _t_distance(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    home = a.here()
    city = _other_city(rng, home)
    h = a.coords(home)
    c = a.coords(city)
    km = a.p("get_distance", latitude1=h[0], longitude1=h[1], latitude2=c[0], longitude2=c[1])
    if km < 1:
        raise TaskRejected("same place")
    goal = f"How far is {city} from my current city? Answer in kilometres, rounded to one decimal place."
    return goal, round(km, 1), 1


def _t_rainiest_day(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    days = [today + timedelta(days=i) for i in range(1, 8)]
    rain = a.series("get_rain_forecast", where, days[0], days[-1], "rain_sum")
    top = max(rain)
    if top > 0 and rain.count(top) > 1:
        raise TaskRejected("tie")
    answer = days[rain.index(top)].isoformat() if top > 0 else "None"
    goal = (
        "Which day of the coming week (the next 7 days) is forecast to be the rainiest here? "
        "Answer with the date (YYYY-MM-DD), or 'None' if no rain is forecast."
    )
    return goal, answer, None


def _t_rainy_days(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    rain = a.series(
        "get_rain_forecast", where, today + timedelta(days=1), today + timedelta(days=7), "rain_sum"
    )
    goal = "How many days of rain are forecast here over the next 7 days? Answer with a number."
    return goal, sum(1 for r in rain if r > 0), 0


def _t_air_level(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    city = _other_city(rng)
    where = a.coords(city)
    index = a.on("get_current_air_quality_index", where, a.date(), "european_aqi_pm2_5")
    level = a.p("get_air_quality_level", air_quality_index=index)
    goal = (
        f"What is the air quality level in {city} today? Answer with one of 'good', 'fair', "
        "'moderate', 'poor', 'very poor' or 'extremely poor'."
    )
    return goal, level, None


def _t_worst_air(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    index = a.series(
        "get_historical_air_quality_index",
        where,
        today - timedelta(days=7),
        today - timedelta(days=1),
        "european_aqi_pm2_5",
    )
    goal = "What was the highest daily air quality index (PM2.5) in my city over the past 7 days? Answer with a number."
    return goal, max(index), 0


def _t_two_city_diff(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    first = _other_city(rng)
    second = _other_city(rng, first)
    tomorrow = a.date() + timedelta(days=1)
    w1, w2 = a.coords(first), a.coords(second)
    t1 = a.series("get_temp_forecast", w1, tomorrow, tomorrow, "temperature_2m_max")[0]
    t2 = a.series("get_temp_forecast", w2, tomorrow, tomorrow, "temperature_2m_max")[0]
    goal = (
        f"By how many degrees will tomorrow's highest temperature in {first} exceed the one in "
        f"{second}? Answer {first}'s minus {second}'s, in degrees Celsius, rounded to one decimal place."
    )
    return goal, round(t1 - t2, 1), 1


def _t_warmest_city(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    cities = rng.sample(world.task_cities(), 3)
    today = a.date()
    highs = []
    for c in cities:
        highs.append(a.on("get_current_temp", a.coords(c), today, "temperature_2m_max"))
    if highs.count(max(highs)) > 1:
        raise TaskRejected("tie")
    goal = f"Which of {cities[0]}, {cities[1]} and {cities[2]} has the highest maximum temperature today? Answer with the city's name."
    return goal, cities[highs.index(max(highs))], None


def _t_coldest_day(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    n = rng.choice((7, 10, 14))
    where = a.coords(a.here())
    today = a.date()
    days = [today - timedelta(days=i) for i in range(n, 0, -1)]
    lows = a.series("get_historical_temp", where, days[0], days[-1], "temperature_2m_min")
    if lows.count(min(lows)) > 1:
        raise TaskRejected("tie")
    goal = (
        f"Which of the past {n} days (not counting today) had the lowest minimum temperature in my "
        "city? Answer with the date (YYYY-MM-DD)."
    )
    return goal, days[lows.index(min(lows))].isoformat(), None


def _t_snow_total(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    city = _other_city(rng)
    where = a.coords(city)
    today = a.date()
    snow = a.series(
        "get_historical_snow", where, today - timedelta(days=30), today - timedelta(days=1), "snowfall_sum"
    )
    if sum(snow) == 0 and rng.random() < 0.8:
        raise TaskRejected("mostly ask where it snows")
    goal = (
        f"How much snow fell in {city} over the past 30 days (not counting today)? Answer in "
        "centimetres, rounded to one decimal place."
    )
    return goal, round(sum(snow), 1), 1


def _t_warmer_week(rng: random.Random, a: _Ask) -> tuple[str, Any, int | None]:
    where = a.coords(a.here())
    today = a.date()
    past = a.series(
        "get_historical_temp",
        where,
        today - timedelta(days=7),
        today - timedelta(days=1),
        "temperature_2m_mean",
    )
    coming = a.series(
        "get_temp_forecast",
        where,
        today + timedelta(days=1),
        today + timedelta(days=7),
        "temperature_2m_mean",
    )
    if round(statistics.fmean(past), 6) == round(statistics.fmean(coming), 6):
        raise TaskRejected("tie")
    goal = (
        "Will the coming week (the next 7 days) be warmer here than the past week (the last 7 days "
        "before today), comparing the average of daily mean temperatures? Answer 'Yes' or 'No'."
    )
    return goal, "Yes" if statistics.fmean(coming) > statistics.fmean(past) else "No", None


TEMPLATES: tuple[tuple[str, Template], ...] = (
    ("avg_temp_yesterday", _t_avg_yesterday),
    ("max_temp_last_year", _t_max_last_year),
    ("min_temp_today", _t_min_today),
    ("compare_last_year", _t_compare_last_year),
    ("forecast_mean", _t_forecast_mean),
    ("forecast_range", _t_forecast_range),
    ("rain_vs_last_year", _t_rain_vs_last_year),
    ("rain_total", _t_rain_total),
    ("snow_days", _t_snow_days),
    ("elevation_gap", _t_elevation_gap),
    ("distance", _t_distance),
    ("rainiest_day", _t_rainiest_day),
    ("rainy_days", _t_rainy_days),
    ("air_level", _t_air_level),
    ("worst_air", _t_worst_air),
    ("two_city_diff", _t_two_city_diff),
    ("warmest_city", _t_warmest_city),
    ("coldest_day", _t_coldest_day),
    ("snow_total", _t_snow_total),
    ("warmer_week", _t_warmer_week),
)


@lru_cache(maxsize=4096)
def build_task(task_id: int) -> ToolTask:
    """Task `task_id`: template task_id % 20, the user's city and date drawn from the id."""
    name, template = TEMPLATES[task_id % len(TEMPLATES)]
    rng = random.Random(f"weather/{task_id}")
    for _ in range(100):
        context = {
            "current_date": (date(2023, 1, 1) + timedelta(days=rng.randrange(365))).isoformat(),
            "current_location": rng.choice(world.task_cities()),
        }
        env = Weather()
        env.set_context(context)
        planner = Planner(env)
        try:
            goal, answer, decimals = template(rng, _Ask(planner, env))
        except TaskRejected:
            continue
        return planner.task(goal, answer, template=name, context=context, decimals=decimals)
    raise RuntimeError(f"weather task {task_id}: no valid instance of template {name!r}")
