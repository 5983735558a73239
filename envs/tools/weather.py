"""Weather: answer questions about weather, places and air quality with 17 tools (AgentBoard's
tool-query Weather, served by AgentGym as `weather`; max 10 rounds).

Tools, names and arguments as the original's (which wrapped open-meteo): the user's date and
city, geocoding, elevation, geodesic distance, historical / current / forecast temperature, rain
and snow, the PM2.5 air quality index and its level, `check_valid_actions` and `finish(answer)`.
The original's rules hold: history ends before the user's current date, forecasts start after
it, one query spans at most 30 days. The backend is offline (weather_world.py): real cities,
generated weather.

Tasks: ids 0-342 are the test set (the original's size), 343-1999 a training set; each id picks a
question template, the user's city and date, and is solved by calling the tools (planner.py), so
the gold answer and subgoals are what the tools return. Answers that are numbers say how to round.

With `weather.data` (the original's weather.jsonl) task id N is the original's task N: its goal,
the user's date and city, and its gold answer. The weather stays generated, so the gold answers
(2023's real weather from open-meteo) do not hold in it: the env says so in `task_set`, and has no
expert for these tasks. Under the profile the original's reward holds: any progress counts as 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from agentgym.envs.registry import register
from agentgym.envs.tools import original
from agentgym.envs.tools import weather_world as world
from agentgym.envs.tools.base import AnswerToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.original import OriginalData
from agentgym.envs.tools.toolkit import Param

TEST_TASKS = 343
TASKS = 2000
MAX_SPAN_DAYS = 30

_LAT = Param("latitude", "number", "The latitude of the location.")
_LON = Param("longitude", "number", "The longitude of the location.")
_START = Param("start_date", "string", "The first day of the period (YYYY-MM-DD).")
_END = Param("end_date", "string", "The last day of the period (YYYY-MM-DD).")
_DAY = Param("current_date", "string", "The day to look up (YYYY-MM-DD).")
_RANGE = (_LAT, _LON, _START, _END)

_INTRO = """\
You are an agent that answers a user's questions about weather, places and air quality by calling \
tools. The tools work with coordinates, so find a place's latitude and longitude with \
get_latitude_longitude instead of guessing them. Dates are YYYY-MM-DD; "today" is the user's \
current date (get_user_current_date)."""

_NOTES = """\
Rules of the weather service: historical data ends the day before the user's current date, \
forecasts start the day after it, and one query covers at most 30 days. When you know the answer, \
call finish with it; round numbers as the question asks."""

_EXAMPLE = """\
Goal: What was the highest temperature here two days ago? Answer in degrees Celsius.
Thought:
I need the user's city first.

Action:
get_user_current_location with Action Input: {}
Observation: Lisbon
Thought:
Now the coordinates of Lisbon.

Action:
get_latitude_longitude with Action Input: {"name": "Lisbon"}
Observation: {'results': [{'name': 'Lisbon', 'latitude': 38.72509, 'longitude': -9.1498, 'country_code': 'PT'}]}
Thought:
I need today's date to know which day was two days ago.

Action:
get_user_current_date with Action Input: {}
Observation: 2023-05-10
Thought:
Two days ago was 2023-05-08; I will look up its temperatures.

Action:
get_historical_temp with Action Input: {"latitude": 38.72509, "longitude": -9.1498, "start_date": "2023-05-08", "end_date": "2023-05-08"}
Observation: {'latitude': 38.7, 'longitude': -9.1, 'daily_units': {'time': 'iso8601', 'temperature_2m_max': '°C', 'temperature_2m_min': '°C', 'temperature_2m_mean': '°C'}, 'daily': {'time': ['2023-05-08'], 'temperature_2m_max': [21.4], 'temperature_2m_min': [12.9], 'temperature_2m_mean': [16.5]}}
Thought:
The highest temperature was 21.4 degrees.

Action:
finish with Action Input: {"answer": 21.4}
Observation: 21.4"""

_DATA_TOOLS = {
    "get_historical_temp",
    "get_historical_rain",
    "get_historical_snow",
    "get_temp_forecast",
    "get_rain_forecast",
    "get_snow_forecast",
    "get_current_temp",
    "get_current_rain",
    "get_current_snow",
    "get_historical_air_quality_index",
    "get_current_air_quality_index",
}


def _parse_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"Error: {field} must be a date in the format YYYY-MM-DD, got {text!r}.") from None


def _check_point(latitude: float, longitude: float) -> None:
    if not -90 <= latitude <= 90:
        raise ToolError(f"Error: latitude must be between -90 and 90, got {latitude}.")
    if not -180 <= longitude <= 180:
        raise ToolError(f"Error: longitude must be between -180 and 180, got {longitude}.")


@register
class Weather(AnswerToolEnv):
    name = "weather"
    description = "Answer weather questions with 17 tools (AgentBoard tool-query Weather); offline backend."
    intro = _INTRO
    notes = _NOTES
    example = _EXAMPLE
    max_rounds = 10
    task_count = TASKS
    splits = {"test": [range(0, TEST_TASKS)], "train": [range(TEST_TASKS, TASKS)]}
    success_threshold = 1.0
    builtin_task_set = "built-in weather questions on a simulated world; not the original's"
    original_expert_gap = (
        "their answers are 2023's real weather (open-meteo), which this simulated world does not reproduce"
    )

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        world.geocoder()
        world.task_cities()

    def __init__(self) -> None:
        super().__init__()
        self.current_date = date(2023, 1, 1)
        self.current_location = ""

    def set_context(self, context: Mapping[str, Any]) -> None:
        self.current_date = date.fromisoformat(context["current_date"])
        self.current_location = context["current_location"]

    def make_task(self, task_id: int) -> ToolTask:
        from agentgym.envs.tools.weather_tasks import build_task

        return build_task(task_id)

    def open_backend(self, task: ToolTask) -> None:
        self.set_context(task.context)

    def clean(self, tool_name: str, result: Any) -> Any:
        # A data query counts as a subgoal by the place and days asked, not by the values.
        if tool_name in _DATA_TOOLS and isinstance(result, dict):
            return {**result, "daily": {"time": result["daily"]["time"]}}
        return result

    # --- the original's rules (profile agentgym) --------------------------------------------------
    def original_clean(self, tool_name: str, result: Any) -> Any:
        # The original dropped only the temperatures from a result.
        if isinstance(result, dict) and "temperature_2m_max" in result.get("daily", {}):
            daily = {k: v for k, v in result["daily"].items() if not k.startswith("temperature_2m_")}
            return {**result, "daily": daily}
        return result

    def original_progress(self) -> float:
        if self.record is None:
            return self.builtin_answer_share()
        gold = self.record.subgoals
        return original.count_met(gold, self.original_records, places=True) / len(gold)

    def original_score(self, best: float, done: bool) -> float:
        # AgentGym's weather server reports any progress as 1.0.
        return 1.0 if best > 0 else 0.0

    # --- tools -----------------------------------------------------------------------------------
    @tool("Get the user's current date.", returns="The current date, YYYY-MM-DD.")
    def get_user_current_date(self) -> str:
        return self.current_date.isoformat()

    @tool("Get the user's current city.", returns="The name of the user's city.")
    def get_user_current_location(self) -> str:
        return self.current_location

    @tool(
        "Get daily temperatures of a place over past days.",
        _RANGE,
        "Daily maximum, minimum and mean temperatures.",
    )
    def get_historical_temp(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("temp", latitude, longitude, *self._span(start_date, end_date, "history"))

    @tool("Get daily rainfall of a place over past days.", _RANGE, "Daily rainfall sums (mm).")
    def get_historical_rain(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("rain", latitude, longitude, *self._span(start_date, end_date, "history"))

    @tool("Get daily snowfall of a place over past days.", _RANGE, "Daily snowfall sums (cm).")
    def get_historical_snow(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("snow", latitude, longitude, *self._span(start_date, end_date, "history"))

    @tool("Get the snowfall forecast of a place for coming days.", _RANGE, "Daily snowfall forecast (cm).")
    def get_snow_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("snow", latitude, longitude, *self._span(start_date, end_date, "forecast"))

    @tool("Get the snowfall of a place on one day.", (_LAT, _LON, _DAY), "The day's snowfall (cm).")
    def get_current_snow(self, latitude: float, longitude: float, current_date: str) -> Any:
        return self._daily("snow", latitude, longitude, *self._span(current_date, current_date, "any"))

    @tool(
        "Get the temperatures of a place on one day.",
        (_LAT, _LON, _DAY),
        "The day's maximum, minimum and mean temperatures.",
    )
    def get_current_temp(self, latitude: float, longitude: float, current_date: str) -> Any:
        return self._daily("temp", latitude, longitude, *self._span(current_date, current_date, "any"))

    @tool(
        "Find the latitude and longitude of a place by its name (e.g. a city).",
        (Param("name", "string", "The name of the place, e.g. a city name."),),
        "Up to three matching places, most populous first, with their coordinates.",
    )
    def get_latitude_longitude(self, name: str) -> Any:
        return {"results": [c.result() for c in world.geocoder().search(name)]}

    @tool("Get the elevation of a place.", (_LAT, _LON), "The elevation in metres.")
    def get_elevation(self, latitude: float, longitude: float) -> Any:
        _check_point(latitude, longitude)
        return {"elevation": [world.elevation(latitude, longitude)]}

    @tool(
        "Get the temperature forecast of a place for coming days.",
        _RANGE,
        "Daily forecast maximum, minimum and mean temperatures.",
    )
    def get_temp_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("temp", latitude, longitude, *self._span(start_date, end_date, "forecast"))

    @tool("Get the rainfall forecast of a place for coming days.", _RANGE, "Daily rainfall forecast (mm).")
    def get_rain_forecast(self, latitude: float, longitude: float, start_date: str, end_date: str) -> Any:
        return self._daily("rain", latitude, longitude, *self._span(start_date, end_date, "forecast"))

    @tool("Get the rainfall of a place on one day.", (_LAT, _LON, _DAY), "The day's rainfall (mm).")
    def get_current_rain(self, latitude: float, longitude: float, current_date: str) -> Any:
        return self._daily("rain", latitude, longitude, *self._span(current_date, current_date, "any"))

    @tool(
        "Get the distance between two points given by their coordinates.",
        (
            Param("latitude1", "number", "The latitude of the first point."),
            Param("longitude1", "number", "The longitude of the first point."),
            Param("latitude2", "number", "The latitude of the second point."),
            Param("longitude2", "number", "The longitude of the second point."),
        ),
        "The distance in kilometres.",
    )
    def get_distance(self, latitude1: float, longitude1: float, latitude2: float, longitude2: float) -> float:
        _check_point(latitude1, longitude1)
        _check_point(latitude2, longitude2)
        return world.distance_km(latitude1, longitude1, latitude2, longitude2)

    @tool(
        "Get the daily air quality index (PM2.5, European scale) of a place over past days.",
        _RANGE,
        "The daily index, read at noon.",
    )
    def get_historical_air_quality_index(
        self, latitude: float, longitude: float, start_date: str, end_date: str
    ) -> Any:
        return self._daily("aqi", latitude, longitude, *self._span(start_date, end_date, "history"))

    @tool(
        "Get the air quality index (PM2.5, European scale) of a place on one day.",
        (_LAT, _LON, _DAY),
        "The day's index, read at noon.",
    )
    def get_current_air_quality_index(self, latitude: float, longitude: float, current_date: str) -> Any:
        return self._daily("aqi", latitude, longitude, *self._span(current_date, current_date, "any"))

    @tool(
        "Name the air quality level of an air quality index value.",
        (Param("air_quality_index", "number", "The air quality index value."),),
        "One of 'good', 'fair', 'moderate', 'poor', 'very poor', 'extremely poor'.",
    )
    def get_air_quality_level(self, air_quality_index: float) -> str:
        return world.air_quality_level(air_quality_index)

    # --- the service -----------------------------------------------------------------------------
    def _span(self, start_date: str, end_date: str, mode: str) -> tuple[date, date]:
        start, end = _parse_date(start_date, "start_date"), _parse_date(end_date, "end_date")
        today = self.current_date
        if mode == "history":
            if start >= today:
                raise ToolError("Error: start_date should be earlier than the current date.")
            if end >= today:
                raise ToolError("Error: end_date should be earlier than the current date.")
        elif mode == "forecast":
            if start <= today:
                raise ToolError("Error: start_date should be later than the current date.")
            if end <= today:
                raise ToolError("Error: end_date should be later than the current date.")
        if end < start:
            raise ToolError("Error: end_date should not be earlier than start_date.")
        if (end - start).days > MAX_SPAN_DAYS:
            raise ToolError(
                "Error: one query may span at most 30 days between start_date and end_date; "
                "split it into several queries."
            )
        return start, end

    def _daily(self, kind: str, latitude: float, longitude: float, start: date, end: date) -> dict[str, Any]:
        _check_point(latitude, longitude)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        weather = [world.day(latitude, longitude, d) for d in days]
        times = [d.isoformat() for d in days]
        out: dict[str, Any] = {"latitude": world.snap(latitude), "longitude": world.snap(longitude)}
        if kind == "temp":
            out["daily_units"] = dict(world.TEMP_UNITS)
            out["daily"] = {
                "time": times,
                "temperature_2m_max": [w.temp_max for w in weather],
                "temperature_2m_min": [w.temp_min for w in weather],
                "temperature_2m_mean": [w.temp_mean for w in weather],
            }
        elif kind == "rain":
            out["daily_units"] = {"time": "iso8601", "rain_sum": "mm"}
            out["daily"] = {"time": times, "rain_sum": [w.rain for w in weather]}
        elif kind == "snow":
            out["daily_units"] = {"time": "iso8601", "snowfall_sum": "cm"}
            out["daily"] = {"time": times, "snowfall_sum": [w.snow for w in weather]}
        else:
            out["daily_units"] = {"time": "iso8601", "european_aqi_pm2_5": "EAQI"}
            out["daily"] = {
                "time": [t + "T12:00" for t in times],
                "european_aqi_pm2_5": [w.aqi for w in weather],
            }
        return out
