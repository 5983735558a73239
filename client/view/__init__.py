"""`agentgym view`: a local, read-only web app over trajectories, evaluations and training runs.

`sources` finds and follows what is on disk (or in a trainer), `index` keeps the episode
summaries and a full-text index in SQLite, `episode` turns one trajectory into replay steps,
`server` is the aiohttp app, and `static/` the page (no CDN, nothing fetched from elsewhere).
"""
