"""Academia: answer questions about papers and authors by querying two graphs (AgentBoard's
tool-query Academia, served by AgentGym as `academia`; max 12 rounds).

Tools, names and arguments as the original's: loadPaperNet, loadAuthorNet, neighbourCheck(graph,
node) (also accepted as neighborCheck), paperNodeCheck(node), authorNodeCheck(node),
authorEdgeCheck(node1, node2), paperEdgeCheck(node1, node2), check_valid_actions and
finish(answer). A graph must be loaded before it is queried, and nodes are named exactly (paper
titles, author names). The backend is a generated citation network (academia_world.py).

Two differences from the original, both for consistency: an author node also lists the author's
papers (the original's node carried paper ids that no tool could resolve), and a PaperNet edge
leads from a paper to the papers it cites (neighbourCheck lists them), with paperEdgeCheck naming
both ends.

Tasks: ids 0-19 are the test set (the original's size), 20-499 a training set, solved with the
tools (planner.py) so gold answers and subgoals are what the tools return.

With `academia.data` (the original's academia.jsonl) task id N is the original's task N: its
question and gold answer, asked of our generated network, which does not hold the answer (the
original read a DBLP graph from pickles, not read here); the env says so in `task_set` and has no
expert for these tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgym.envs.registry import register
from agentgym.envs.tools import academia_world as world
from agentgym.envs.tools.base import AnswerToolEnv, ToolError, ToolTask, tool
from agentgym.envs.tools.original import OriginalData
from agentgym.envs.tools.toolkit import Param

TEST_TASKS = 20
TASKS = 500

_INTRO = """\
You are an agent that answers questions about research papers and their authors by querying two \
graphs of a DBLP-like citation network: PaperNet, whose nodes are papers (an edge leads from a \
paper to each paper it cites), and AuthorNet, whose nodes are authors (an edge joins two authors \
who wrote a paper together). Name nodes exactly: papers by their full title, authors by their \
full name."""

_NOTES = "Load a graph with loadPaperNet or loadAuthorNet before you query it. When you know the answer, call finish with it."

_EXAMPLE = """\
Goal: In which year was the paper "Robust Fuzzing for Malware Analysis" published?
Thought:
This asks about a paper, so I load PaperNet first.

Action:
loadPaperNet with Action Input: {}
Observation: PaperNet is loaded.
Thought:
The paper's node holds its year.

Action:
paperNodeCheck with Action Input: {"node": "Robust Fuzzing for Malware Analysis"}
Observation: {'authors': ['Ann Lee', 'Omar Diaz'], 'year': 2019, 'venue': 'Journal of Security', 'n_citation': 14, 'keywords': ['malware', 'privacy'], 'doc_type': 'Journal'}
Thought:
It was published in 2019.

Action:
finish with Action Input: {"answer": 2019}
Observation: 2019"""

_NODE = Param("node", "string", "The node: a paper's title or an author's name.")


@register
class Academia(AnswerToolEnv):
    name = "academia"
    description = "Answer questions on a citation network with graph tools (AgentBoard tool-query Academia); offline graph."
    intro = _INTRO
    notes = _NOTES
    example = _EXAMPLE
    aliases = {"neighborCheck": "neighbourCheck"}
    max_rounds = 12
    task_count = TASKS
    splits = {"test": [range(0, TEST_TASKS)], "train": [range(TEST_TASKS, TASKS)]}
    success_threshold = 1.0

    builtin_task_set = "built-in citation questions on a generated network; not the original's"
    original_expert_gap = "their answers come from the original's DBLP graph (a pickle, not read here), which the generated network does not hold"

    @classmethod
    def configure_world(cls, settings: Mapping[str, str], data: OriginalData | None) -> None:
        world.graph()

    def __init__(self) -> None:
        super().__init__()
        self.paper_net = False
        self.author_net = False

    def make_task(self, task_id: int) -> ToolTask:
        from agentgym.envs.tools.academia_tasks import build_task

        return build_task(task_id)

    def open_backend(self, task: ToolTask) -> None:
        self.paper_net = self.author_net = False

    # --- tools -----------------------------------------------------------------------------------
    @tool("Load PaperNet: nodes are papers, edges lead from a paper to the papers it cites.")
    def loadPaperNet(self) -> str:
        self.paper_net = True
        return "PaperNet is loaded."

    @tool("Load AuthorNet: nodes are authors, edges join authors who wrote a paper together.")
    def loadAuthorNet(self) -> str:
        self.author_net = True
        return "AuthorNet is loaded."

    @tool(
        "List the neighbours of a node: in PaperNet the papers it cites, in AuthorNet the author's collaborators.",
        (
            Param("graph", "string", "The graph to query.", enum=("PaperNet", "AuthorNet")),
            Param("node", "string", "The node whose neighbours to list."),
        ),
        "- neighbors (Type: array): the neighbouring nodes.",
    )
    def neighbourCheck(self, graph: str, node: str) -> list[str]:
        g = world.graph()
        if graph == "PaperNet":
            self._paper(node)
            return list(g.cites[node])
        self._author(node)
        return g.collaborators(node)

    @tool(
        "Get the attributes of a paper in PaperNet.",
        (Param("node", "string", "The title of the paper."),),
        "- authors, year, venue, n_citation (citations in the whole literature), keywords, doc_type.",
    )
    def paperNodeCheck(self, node: str) -> dict[str, Any]:
        p = self._paper(node)
        return {k: p[k] for k in ("authors", "year", "venue", "n_citation", "keywords", "doc_type")}

    @tool(
        "Get the attributes of an author in AuthorNet.",
        (Param("node", "string", "The name of the author."),),
        "- name, org (the author's organization), papers (the author's papers).",
    )
    def authorNodeCheck(self, node: str) -> dict[str, Any]:
        a = self._author(node)
        return {"name": a["name"], "org": a["org"], "papers": list(a["papers"])}

    @tool(
        "Get the attributes of the edge between two authors in AuthorNet.",
        (Param("node1", "string", "The first author."), Param("node2", "string", "The second author.")),
        "- collaborative_papers : the papers the two wrote together.",
    )
    def authorEdgeCheck(self, node1: str, node2: str) -> dict[str, Any]:
        self._author(node1)
        self._author(node2)
        papers = world.graph().coauthored.get(node1, {}).get(node2)
        if not papers:
            raise ToolError(f"There is no edge between {node1} and {node2}.")
        return {"collaborative_papers": list(papers)}

    @tool(
        "Get the attributes of the edge between two papers in PaperNet (the first cites the second).",
        (Param("node1", "string", "The citing paper."), Param("node2", "string", "The cited paper.")),
        "- citing, cited : the two papers.",
    )
    def paperEdgeCheck(self, node1: str, node2: str) -> dict[str, Any]:
        self._paper(node1)
        self._paper(node2)
        if node2 not in world.graph().cites[node1]:
            raise ToolError(f"There is no edge between {node1} and {node2}.")
        return {"citing": node1, "cited": node2}

    def _paper(self, node: str) -> dict[str, Any]:
        if not self.paper_net:
            raise ToolError("Please load the PaperNet first.")
        p = world.graph().papers.get(node)
        if p is None:
            raise ToolError(f"There is no node named {node} in the PaperNet.")
        return p

    def _author(self, node: str) -> dict[str, Any]:
        if not self.author_net:
            raise ToolError("Please load the AuthorNet first.")
        a = world.graph().authors.get(node)
        if a is None:
            raise ToolError(f"There is no node named {node} in the AuthorNet.")
        return a
