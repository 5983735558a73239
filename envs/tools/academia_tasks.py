"""Task generation for the Academia env (academia.py): templates, each solved with the env's own tools."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from agentgym.envs.tools import academia_world as world
from agentgym.envs.tools.academia import Academia
from agentgym.envs.tools.base import ToolTask
from agentgym.envs.tools.planner import Planner, TaskRejected

# --- tasks ---------------------------------------------------------------------------------------
Template = Callable[[random.Random, Planner], tuple[str, Any, int | None]]


def _authors(
    rng: random.Random, min_papers: int = 1, max_papers: int = 99, min_collab: int = 0, max_collab: int = 99
) -> str:
    g = world.graph()
    names = sorted(g.authors)
    for _ in range(10_000):
        n = rng.choice(names)
        if (
            min_papers <= len(g.authors[n]["papers"]) <= max_papers
            and min_collab <= len(g.collaborators(n)) <= max_collab
        ):
            return n
    raise TaskRejected("no such author")


def _paper(rng: random.Random) -> str:
    return rng.choice(sorted(world.graph().papers))


def _unique_max(counts: Mapping[Any, float]) -> Any:
    best = max(counts.values())
    winners = [k for k, v in counts.items() if v == best]
    if len(winners) != 1:
        raise TaskRejected("tie")
    return winners[0]


def _author_papers(p: Planner, name: str) -> list[dict[str, Any]]:
    """Load both graphs, read the author's node, then each of their papers."""
    p("loadAuthorNet")
    titles = p("authorNodeCheck", node=name)["papers"]
    p("loadPaperNet")
    return [{"title": t, **p("paperNodeCheck", node=t)} for t in titles]


def _t_mutual(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    a = _authors(rng, min_collab=2)
    b = rng.choice(g.collaborators(a))
    p("loadAuthorNet")
    mutual = set(p("neighbourCheck", graph="AuthorNet", node=a)) & set(
        p("neighbourCheck", graph="AuthorNet", node=b)
    )
    goal = f"How many collaborators do {a} and {b} have in common? Answer with a number."
    return goal, len(mutual), 0


def _t_most_cited(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng, 2, 7)
    papers = _author_papers(p, a)
    best = _unique_max({x["title"]: x["n_citation"] for x in papers})
    return f"Which paper by {a} has the most citations? Answer with its title.", best, None


def _t_most_cited_coauthors(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng, 2, 7)
    papers = _author_papers(p, a)
    best = _unique_max({x["title"]: x["n_citation"] for x in papers})
    others = sorted(n for n in next(x for x in papers if x["title"] == best)["authors"] if n != a)
    if not others:
        raise TaskRejected("single author")
    goal = (
        f"Who are the co-authors of {a} on {a}'s most cited paper? Answer with a list of names, "
        "like ['author1', 'author2']."
    )
    return goal, others, None


def _t_top_venue(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng, 3, 7)
    papers = _author_papers(p, a)
    venue = _unique_max(Counter(x["venue"] for x in papers))
    return f"In which venue has {a} published the most papers? Answer with the venue's name.", venue, None


def _t_joint_citations(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    a = _authors(rng, min_collab=1)
    b = rng.choice(g.collaborators(a))
    if len(g.coauthored[a][b]) > 7:
        raise TaskRejected("too many papers")
    p("loadAuthorNet")
    joint = p("authorEdgeCheck", node1=a, node2=b)["collaborative_papers"]
    p("loadPaperNet")
    total = sum(p("paperNodeCheck", node=t)["n_citation"] for t in joint)
    goal = f"How many citations do the papers written together by {a} and {b} have in total? Answer with a number."
    return goal, total, 0


def _t_top_collaborator(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng, min_collab=2, max_collab=8)
    p("loadAuthorNet")
    counts = {
        c: len(p("authorEdgeCheck", node1=a, node2=c)["collaborative_papers"])
        for c in p("neighbourCheck", graph="AuthorNet", node=a)
    }
    best = _unique_max(counts)
    return f"Who has written the most papers with {a}? Answer with the author's name.", best, None


def _t_paper_orgs(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    title = _paper(rng)
    p("loadPaperNet")
    authors = p("paperNodeCheck", node=title)["authors"]
    p("loadAuthorNet")
    orgs = sorted({p("authorNodeCheck", node=n)["org"] for n in authors})
    goal = (
        f"Which organizations are the authors of the paper '{title}' affiliated with? Answer with a "
        "list of organizations, like ['org1', 'org2']."
    )
    return goal, orgs, None


def _t_top_keyword(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng, 2, 7)
    papers = _author_papers(p, a)
    keyword = _unique_max(Counter(k for x in papers for k in x["keywords"]))
    return f"Which keyword appears most often in the papers of {a}? Answer with the keyword.", keyword, None


def _t_paper_authors(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    title = _paper(rng)
    p("loadPaperNet")
    authors = p("paperNodeCheck", node=title)["authors"]
    goal = f"Who wrote the paper '{title}'? Answer with a list of names, like ['author1', 'author2']."
    return goal, sorted(authors), None


def _t_author_overlap(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    first = _paper(rng)
    if rng.random() < 0.5:
        # A second paper by one of the first paper's authors.
        author = rng.choice(g.papers[first]["authors"])
        others = [t for t in g.authors[author]["papers"] if t != first]
        if not others:
            raise TaskRejected("one paper")
        second = rng.choice(others)
    else:
        second = _paper(rng)
    if second == first:
        raise TaskRejected("same paper")
    p("loadPaperNet")
    a1 = set(p("paperNodeCheck", node=first)["authors"])
    a2 = set(p("paperNodeCheck", node=second)["authors"])
    goal = f"Do the papers '{first}' and '{second}' share any author? Answer 'Yes' or 'No'."
    return goal, "Yes" if a1 & a2 else "No", None


def _t_author_org(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a = _authors(rng)
    p("loadAuthorNet")
    org = p("authorNodeCheck", node=a)["org"]
    return f"Which organization is {a} affiliated with? Answer with the organization's name.", org, None


def _t_same_org(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    a = _authors(rng, min_collab=1)
    same = [c for c in g.collaborators(a) if g.authors[c]["org"] == g.authors[a]["org"]]
    b = rng.choice(same) if same and rng.random() < 0.5 else rng.choice(g.collaborators(a))
    p("loadAuthorNet")
    yes = p("authorNodeCheck", node=a)["org"] == p("authorNodeCheck", node=b)["org"]
    goal = f"Are {a} and {b} affiliated with the same organization? Answer 'Yes' or 'No'."
    return goal, "Yes" if yes else "No", None


def _t_references(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    title = _paper(rng)
    p("loadPaperNet")
    refs = p("neighbourCheck", graph="PaperNet", node=title)
    if not refs and rng.random() < 0.7:
        raise TaskRejected("mostly ask about papers that cite others")
    goal = f"How many papers in the network does the paper '{title}' cite? Answer with a number."
    return goal, len(refs), 0


def _t_more_cited(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    first, second = _paper(rng), _paper(rng)
    p("loadPaperNet")
    c1, c2 = p("paperNodeCheck", node=first)["n_citation"], p("paperNodeCheck", node=second)["n_citation"]
    if c1 == c2 or first == second:
        raise TaskRejected("tie")
    goal = f"Which paper has more citations: '{first}' or '{second}'? Answer with its title."
    return goal, first if c1 > c2 else second, None


def _t_published_first(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    first, second = _paper(rng), _paper(rng)
    p("loadPaperNet")
    y1, y2 = p("paperNodeCheck", node=first)["year"], p("paperNodeCheck", node=second)["year"]
    if y1 == y2:
        raise TaskRejected("same year")
    goal = f"Which paper was published first: '{first}' or '{second}'? Answer with its title."
    return goal, first if y1 < y2 else second, None


def _t_same_venue(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    first = _paper(rng)
    peers = [t for t, x in g.papers.items() if x["venue"] == g.papers[first]["venue"] and t != first]
    second = rng.choice(sorted(peers)) if rng.random() < 0.5 else _paper(rng)
    if second == first:
        raise TaskRejected("same paper")
    p("loadPaperNet")
    yes = p("paperNodeCheck", node=first)["venue"] == p("paperNodeCheck", node=second)["venue"]
    goal = f"Were the papers '{first}' and '{second}' published in the same venue? Answer 'Yes' or 'No'."
    return goal, "Yes" if yes else "No", None


def _t_same_venue_year(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    first = _paper(rng)
    f = g.papers[first]
    peers = sorted(
        t
        for t, x in g.papers.items()
        if x["venue"] == f["venue"] and t != first and (x["year"] == f["year"] or rng.random() < 0.1)
    )
    if not peers:
        raise TaskRejected("no peer")
    second = rng.choice(peers)
    p("loadPaperNet")
    n1, n2 = p("paperNodeCheck", node=first), p("paperNodeCheck", node=second)
    yes = n1["venue"] == n2["venue"] and n1["year"] == n2["year"]
    goal = (
        f"Were the papers '{first}' and '{second}' published in the same venue and in the same year? "
        "Answer 'Yes' or 'No'."
    )
    return goal, "Yes" if yes else "No", None


def _t_both_conference(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    first, second = _paper(rng), _paper(rng)
    if first == second:
        raise TaskRejected("same paper")
    p("loadPaperNet")
    kinds = [p("paperNodeCheck", node=t)["doc_type"] for t in (first, second)]
    goal = f"Are '{first}' and '{second}' both conference papers? Answer 'Yes' or 'No'."
    return goal, "Yes" if kinds == ["Conference", "Conference"] else "No", None


def _collaborator_orgs(rng: random.Random, p: Planner) -> tuple[str, str, dict[str, str]]:
    a = _authors(rng, min_collab=2, max_collab=8)
    p("loadAuthorNet")
    org = p("authorNodeCheck", node=a)["org"]
    others = {c: p("authorNodeCheck", node=c)["org"] for c in p("neighbourCheck", graph="AuthorNet", node=a)}
    return a, org, others


def _t_same_org_collaborators(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a, org, others = _collaborator_orgs(rng, p)
    same = sorted(c for c, o in others.items() if o == org)
    if not same:
        raise TaskRejected("none")
    goal = (
        f"Which collaborators of {a} are from the same organization as {a}? Answer with a list of "
        "names, like ['author1', 'author2']."
    )
    return goal, same, None


def _t_other_org_collaborators(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    a, org, others = _collaborator_orgs(rng, p)
    different = sorted(c for c, o in others.items() if o != org)
    if not different:
        raise TaskRejected("none")
    goal = (
        f"Which collaborators of {a} are from a different organization than {a}? Answer with a list "
        "of names, like ['author1', 'author2']."
    )
    return goal, different, None


def _t_cites(rng: random.Random, p: Planner) -> tuple[str, Any, int | None]:
    g = world.graph()
    first = _paper(rng)
    refs = g.cites[first]
    second = rng.choice(refs) if refs and rng.random() < 0.5 else _paper(rng)
    if second == first:
        raise TaskRejected("same paper")
    p("loadPaperNet")
    yes = second in p("neighbourCheck", graph="PaperNet", node=first)
    goal = f"Does the paper '{first}' cite the paper '{second}'? Answer 'Yes' or 'No'."
    return goal, "Yes" if yes else "No", None


TEMPLATES: tuple[tuple[str, Template], ...] = (
    ("mutual_collaborators", _t_mutual),
    ("most_cited_paper", _t_most_cited),
    ("most_cited_coauthors", _t_most_cited_coauthors),
    ("top_venue", _t_top_venue),
    ("joint_citations", _t_joint_citations),
    ("top_collaborator", _t_top_collaborator),
    ("paper_orgs", _t_paper_orgs),
    ("top_keyword", _t_top_keyword),
    ("paper_authors", _t_paper_authors),
    ("author_overlap", _t_author_overlap),
    ("author_org", _t_author_org),
    ("same_org", _t_same_org),
    ("references", _t_references),
    ("more_cited", _t_more_cited),
    ("published_first", _t_published_first),
    ("same_venue", _t_same_venue),
    ("same_venue_year", _t_same_venue_year),
    ("both_conference", _t_both_conference),
    ("same_org_collaborators", _t_same_org_collaborators),
    ("other_org_collaborators", _t_other_org_collaborators),
    ("cites", _t_cites),
)


@lru_cache(maxsize=4096)
def build_task(task_id: int) -> ToolTask:
    name, template = TEMPLATES[task_id % len(TEMPLATES)]
    rng = random.Random(f"academia/{task_id}")
    for _ in range(500):
        planner = Planner(Academia())
        try:
            goal, answer, decimals = template(rng, planner)
        except TaskRejected:
            continue
        if len(planner.calls) + 1 > Academia.max_rounds:
            continue
        return planner.task(goal, answer, template=name, decimals=decimals)
    raise RuntimeError(f"academia task {task_id}: no valid instance of template {name!r}")
