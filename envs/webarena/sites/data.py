"""The built-in sites' data, generated from a seed: the same seed gives the same data on every machine.

One pure function, `generate(seed)`, makes everything: the shop's catalogue, customers and past
orders, and the forum's forums, users, posts and comments. The sites load it into SQLite at start
(db.py) and the built-in tasks (builtin_tasks.py) read their reference answers from the same
objects, so a task's answer is true on the site by construction (and tested through HTTP).

Only `random.Random(seed)` and fixed word lists are used (no hash(), no dict-order dependence on
input, no clock), so the data is stable across machines and Python versions.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field
from functools import cache

DEFAULT_SEED = 0

# The accounts, with WebArena's documented defaults so its own auto-login works unchanged.
SHOP_EMAIL = "emma.lopez@gmail.com"
SHOP_PASSWORD = "Password.123"
SHOP_CUSTOMER_NAME = ("Emma", "Lopez")
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin1234"
FORUM_USERNAME = "MarvelsGrantMan136"
FORUM_PASSWORD = "test1234"

# Shipping charged per order: the grand total is the items' subtotal plus this.
SHIPPING = 5.0
ORDER_STATUSES = ("Pending", "Processing", "Complete", "Canceled")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def money(value: float) -> str:
    return f"${value:,.2f}"


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    slug: str


@dataclass(frozen=True)
class Review:
    author: str
    rating: int  # 1-5 stars
    title: str
    text: str


@dataclass(frozen=True)
class Product:
    id: int
    category_id: int
    name: str
    slug: str
    sku: str
    price: float
    stock: int
    description: str
    reviews: tuple[Review, ...]

    @property
    def rating(self) -> str:
        """The average rating as the product page shows it, e.g. "4.3 out of 5" ("" without reviews)."""
        if not self.reviews:
            return ""
        return f"{sum(r.rating for r in self.reviews) / len(self.reviews):.1f} out of 5"


@dataclass(frozen=True)
class Customer:
    id: int
    first: str
    last: str
    email: str
    city: str
    phone: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True)
class OrderItem:
    product_id: int
    qty: int
    price: float


@dataclass(frozen=True)
class Order:
    id: int
    customer_id: int
    created: str  # ISO date
    status: str
    items: tuple[OrderItem, ...]

    @property
    def number(self) -> str:
        return f"{self.id:09d}"

    @property
    def subtotal(self) -> float:
        return round(sum(i.qty * i.price for i in self.items), 2)

    @property
    def total(self) -> float:
        return round(self.subtotal + SHIPPING, 2)


@dataclass(frozen=True)
class Forum:
    id: int
    name: str
    title: str
    description: str


@dataclass(frozen=True)
class User:
    id: int
    name: str
    joined: str


@dataclass(frozen=True)
class Comment:
    id: int
    post_id: int
    author_id: int
    body: str
    score: int
    created: str  # ISO timestamp


@dataclass(frozen=True)
class Post:
    id: int
    forum_id: int
    author_id: int
    title: str
    slug: str
    body: str
    score: int
    created: str  # ISO timestamp
    comments: tuple[Comment, ...]


@dataclass(frozen=True)
class SiteData:
    seed: int
    categories: tuple[Category, ...]
    products: tuple[Product, ...]
    customers: tuple[Customer, ...]
    orders: tuple[Order, ...]
    forums: tuple[Forum, ...]
    users: tuple[User, ...]
    posts: tuple[Post, ...]
    # Lookups, filled in __post_init__.
    product_by_id: dict[int, Product] = field(default_factory=dict, compare=False)
    customer_by_id: dict[int, Customer] = field(default_factory=dict, compare=False)
    user_by_id: dict[int, User] = field(default_factory=dict, compare=False)
    forum_by_id: dict[int, Forum] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.product_by_id.update({p.id: p for p in self.products})
        self.customer_by_id.update({c.id: c for c in self.customers})
        self.user_by_id.update({u.id: u for u in self.users})
        self.forum_by_id.update({f.id: f for f in self.forums})

    @property
    def shop_customer(self) -> Customer:
        """The customer the shop's login account belongs to."""
        return next(c for c in self.customers if c.email == SHOP_EMAIL)

    @property
    def forum_user(self) -> User:
        return next(u for u in self.users if u.name == FORUM_USERNAME)


# --- word lists ---------------------------------------------------------------------------------
_CATALOGUE: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Beauty & Personal Care",
        ("Lumiere", "Velvetine", "Aurelle", "Nuvora"),
        ("Hydrating", "Soothing", "Brightening", "Nourishing", "Gentle"),
        ("Face Cream", "Lip Balm", "Body Lotion", "Hand Soap", "Shampoo", "Eye Serum"),
    ),
    (
        "Electronics",
        ("Voltix", "Sonari", "Kestrel", "Orbis"),
        ("Wireless", "Compact", "Portable", "Smart", "Rugged"),
        ("Earbuds", "Speaker", "Charger", "Webcam", "Keyboard", "Power Bank"),
    ),
    (
        "Home & Kitchen",
        ("Hearthly", "Casabella", "Maple Row", "Ironleaf"),
        ("Ceramic", "Stainless", "Nonstick", "Bamboo", "Glass"),
        ("Frying Pan", "Cutting Board", "Mixing Bowl", "Teapot", "Spice Rack", "Dish Rack"),
    ),
    (
        "Grocery & Gourmet Food",
        ("Harvest Moon", "Golden Acre", "Pantry Lane", "Olive Grove"),
        ("Organic", "Roasted", "Spiced", "Smoked", "Honey"),
        ("Almonds", "Coffee Beans", "Green Tea", "Granola", "Olive Oil", "Pasta Sauce"),
    ),
    (
        "Sports & Outdoors",
        ("Trailcrest", "Summit Peak", "Riverbend", "Northpaw"),
        ("Lightweight", "Insulated", "Foldable", "Waterproof", "Reflective"),
        ("Yoga Mat", "Water Bottle", "Hiking Pole", "Camping Chair", "Duffle Bag", "Headlamp"),
    ),
    (
        "Office Products",
        ("Inkwell", "Paperlane", "Deskmate", "Clarion"),
        ("Recycled", "Magnetic", "Refillable", "Adjustable", "Classic"),
        ("Notebook", "Desk Lamp", "Gel Pens", "Stapler", "File Organizer", "Whiteboard"),
    ),
    (
        "Toys & Games",
        ("Playwright Co", "Tinker Town", "Jolly Fox", "Brickhaven"),
        ("Wooden", "Magnetic", "Glow", "Classic", "Deluxe"),
        ("Puzzle", "Building Set", "Board Game", "Kite", "Train Set", "Card Game"),
    ),
    (
        "Clothing & Shoes",
        ("Northwind", "Urban Loom", "Cotton Creek", "Stridewell"),
        ("Merino", "Linen", "Fleece", "Quilted", "Breathable"),
        ("Running Shoes", "Hoodie", "Scarf", "Rain Jacket", "Socks", "Beanie"),
    ),
)
_PRODUCTS_PER_CATEGORY = 15

_FIRST = (
    "Olivia", "Liam", "Ava", "Noah", "Sophia", "Mason", "Isabella", "Lucas", "Mia", "Ethan",
    "Amelia", "James", "Harper", "Benjamin", "Evelyn", "Henry", "Abigail", "Daniel", "Ella", "Samuel",
    "Grace", "Jack", "Chloe", "Owen", "Nora", "Leo", "Zoe", "Caleb", "Lily", "Isaac",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark",
    "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Nelson", "Carter", "Mitchell", "Perez", "Roberts", "Turner", "Phillips", "Campbell",
)  # fmt: skip
_CITIES = (
    "Austin", "Denver", "Portland", "Boston", "Chicago", "Seattle", "Phoenix", "Atlanta", "Miami",
    "Pittsburgh", "Nashville", "Madison", "Tucson", "Raleigh", "Omaha",
)  # fmt: skip
_REVIEW_WORDS = {
    5: ("Absolutely love it", "Exceeded my expectations", "Best purchase this year", "Five stars"),
    4: ("Very good", "Works well", "Happy with it", "Solid choice"),
    3: ("It is okay", "Decent for the price", "Does the job", "Average"),
    2: ("Not great", "A bit disappointed", "Could be better", "Meh"),
    1: ("Would not buy again", "Broke quickly", "Very disappointed", "Waste of money"),
}
_REVIEW_TAILS = (
    "Arrived quickly and well packed.",
    "The quality matches the description.",
    "I use it every day.",
    "Bought it as a gift.",
    "The size is smaller than I expected.",
    "Good value for money.",
)

_FORUMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("books", "Books", ("fantasy trilogy", "mystery novel", "poetry collection", "audiobook", "library haul",
                        "graphic novel", "reading journal", "sci-fi classic", "book club pick", "memoir")),
    ("movies", "Movies", ("director's cut", "film score", "heist movie", "silent film", "movie marathon",
                          "documentary", "horror remake", "animated feature", "cinema snack", "box set")),
    ("gaming", "Gaming", ("speedrun", "retro console", "co-op campaign", "indie platformer", "strategy game",
                          "gaming chair", "controller mod", "open world map", "boss fight", "save file")),
    ("science", "Science", ("telescope", "lab notebook", "fossil find", "chemistry set", "weather station",
                            "microscope", "rocket launch", "solar eclipse", "bird census", "tide pool")),
    ("cooking", "Cooking", ("sourdough starter", "cast iron skillet", "ramen broth", "spice blend",
                            "meal prep", "pizza oven", "knife set", "pie crust", "pickle jar", "curry paste")),
    ("travel", "Travel", ("night train", "carry-on bag", "hostel stay", "road trip", "travel adapter",
                          "mountain hut", "ferry crossing", "packing list", "city pass", "island hop")),
    ("music", "Music", ("vinyl record", "bass guitar", "drum kit", "live album", "music theory",
                        "concert ticket", "synthesizer", "choir rehearsal", "ukulele", "practice amp")),
    ("diy", "DIY", ("workbench", "garden shed", "bookshelf build", "tile backsplash", "paint sprayer",
                    "cordless drill", "raised bed", "picture frame", "laundry nook", "porch swing")),
)  # fmt: skip
_TITLES = (
    "What is your favourite {n}?",
    "Looking for {n} recommendations",
    "Just finished my first {n}",
    "Is a {n} worth it this year?",
    "Unpopular opinion about the {n}",
    "Tips for getting started with a {n}",
    "Help me choose a {n}",
    "Show us your {n}",
    "Why is the {n} so underrated?",
    "Weekly thread: {n}",
    "My {n} experiment went wrong",
    "First impressions of a new {n}",
    "How do you store your {n}?",
)
_POSTS_PER_FORUM = 13
_BODIES = (
    "I have been thinking about this for a while and would like to hear what you all think.",
    "Long time reader, first time poster. Any advice is welcome.",
    "Sharing this because the last thread on the topic was really helpful.",
    "Curious whether my experience matches yours.",
    "Here is what I learned after a few months, and a question at the end.",
)
_COMMENTS = (
    "Great post, thanks for sharing.",
    "I had the exact same experience last year.",
    "Hard disagree, but I see where you are coming from.",
    "Saving this thread for later.",
    "Have you tried asking at your local shop?",
    "This is the kind of content I come here for.",
    "Could you post an update in a few weeks?",
    "Underrated comment right here.",
    "I think it depends on your budget.",
    "Take my upvote.",
)
_USER_ADJ = ("quiet", "brave", "lucky", "misty", "rapid", "sunny", "clever", "gentle", "wild", "cosmic")
_USER_NOUN = ("falcon", "otter", "maple", "comet", "badger", "harbor", "pixel", "willow", "lynx", "ember")
_USERS = 30


def _pick(rng: random.Random, seq: tuple[str, ...]) -> str:
    return seq[rng.randrange(len(seq))]


def _shop(rng: random.Random) -> tuple[tuple[Category, ...], tuple[Product, ...]]:
    categories: list[Category] = []
    products: list[Product] = []
    skus: set[str] = set()
    for ci, (cname, brands, adjectives, nouns) in enumerate(_CATALOGUE, start=1):
        categories.append(Category(ci, cname, slugify(cname)))
        combos = [(b, a, n) for b in brands for a in adjectives for n in nouns]
        rng.shuffle(combos)
        prices: set[float] = set()
        for brand, adj, noun in combos[:_PRODUCTS_PER_CATEGORY]:
            name = f"{brand} {adj} {noun}"
            while True:  # distinct prices within a category, so "the cheapest" is one product
                price = round(rng.uniform(3, 150), 2)
                if price not in prices:
                    prices.add(price)
                    break
            while True:
                sku = "B0" + "".join(_pick(rng, tuple("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")) for _ in range(8))
                if sku not in skus:
                    skus.add(sku)
                    break
            reviews = []
            for _ in range(rng.choice((0, 1, 2, 3, 3, 4, 5, 6, 7, 8))):
                stars = rng.choice((5, 5, 4, 4, 4, 3, 2, 1))
                reviews.append(
                    Review(
                        author=f"{_pick(rng, _FIRST)} {_pick(rng, _LAST)[0]}.",
                        rating=stars,
                        title=_pick(rng, _REVIEW_WORDS[stars]),
                        text=_pick(rng, _REVIEW_TAILS),
                    )
                )
            pid = len(products) + 1
            products.append(
                Product(
                    id=pid,
                    category_id=ci,
                    name=name,
                    slug=slugify(name),
                    sku=sku,
                    price=price,
                    stock=rng.randrange(0, 250),
                    description=f"The {adj.lower()} {noun.lower()} from {brand}, part of our {cname} range.",
                    reviews=tuple(reviews),
                )
            )
    return tuple(categories), tuple(products)


def _customers(rng: random.Random) -> tuple[Customer, ...]:
    names = [(f, last) for f in _FIRST for last in _LAST]
    rng.shuffle(names)
    chosen = [SHOP_CUSTOMER_NAME, *[n for n in names if n != SHOP_CUSTOMER_NAME][:39]]
    out = []
    for i, (first, last) in enumerate(chosen, start=1):
        email = (
            f"{first.lower()}.{last.lower()}@gmail.com"
            if i == 1
            else f"{first.lower()}{last.lower()}{i}@example.com"
        )
        phone = f"555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}"
        out.append(Customer(i, first, last, email, _pick(rng, _CITIES), phone))
    return tuple(out)


def _orders(
    rng: random.Random, customers: tuple[Customer, ...], products: tuple[Product, ...]
) -> tuple[Order, ...]:
    start = dt.date(2022, 1, 1)
    raw: list[tuple[str, int, str, tuple[OrderItem, ...]]] = []
    for c in customers:
        # The shop's own account has a full first page of order history (and no second page).
        for _ in range(9 if c.id == 1 else rng.randrange(1, 6)):
            day = start + dt.timedelta(days=rng.randrange(0, 500))
            picked = rng.sample(products, rng.randrange(1, 4))
            items = tuple(OrderItem(p.id, rng.randrange(1, 4), p.price) for p in picked)
            raw.append((day.isoformat(), c.id, _pick(rng, ORDER_STATUSES), items))
    # Order numbers follow the date, as a real shop's do; ties keep generation order.
    raw.sort(key=lambda r: r[0])
    return tuple(
        Order(i, cid, day, status, items) for i, (day, cid, status, items) in enumerate(raw, start=1)
    )


def _forum(rng: random.Random) -> tuple[tuple[Forum, ...], tuple[User, ...], tuple[Post, ...]]:
    forums = tuple(
        Forum(i, name, title, f"A place to talk about {title.lower()}.")
        for i, (name, title, _) in enumerate(_FORUMS, start=1)
    )
    handles = [f"{a}{n}{rng.randrange(10, 100)}" for a in _USER_ADJ for n in _USER_NOUN]
    rng.shuffle(handles)
    base = dt.datetime(2023, 1, 1, 9, 0)
    users = [User(1, FORUM_USERNAME, "2022-06-01")]
    for handle in handles[: _USERS - 1]:
        users.append(
            User(len(users) + 1, handle, (dt.date(2022, 1, 1) + dt.timedelta(rng.randrange(365))).isoformat())
        )
    posts: list[Post] = []
    comment_id = 0
    for forum, (_, _, nouns) in zip(forums, _FORUMS, strict=True):
        titles = [t.format(n=n) for t in _TITLES for n in nouns]
        rng.shuffle(titles)
        for title in titles[:_POSTS_PER_FORUM]:
            pid = len(posts) + 1
            created = base + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 180))
            author = rng.randrange(2, len(users) + 1)
            # Commenters on one post are distinct people, so "the comment by X" names one comment.
            commenters = rng.sample(range(2, len(users) + 1), rng.choice((0, 1, 2, 3, 4, 5, 6, 8)))
            comments = []
            for k, uid in enumerate(commenters):
                comment_id += 1
                comments.append(
                    Comment(
                        comment_id,
                        pid,
                        uid,
                        _pick(rng, _COMMENTS),
                        rng.randrange(-3, 40),
                        (created + dt.timedelta(minutes=17 * (k + 1))).isoformat(timespec="seconds"),
                    )
                )
            posts.append(
                Post(
                    pid,
                    forum.id,
                    author,
                    title,
                    slugify(title)[:60].strip("-"),
                    _pick(rng, _BODIES),
                    # Distinct scores within a forum, so "the top post" is one post.
                    rng.randrange(1, 25) * 13 + pid % 13,
                    created.isoformat(timespec="seconds"),
                    tuple(comments),
                )
            )
    return forums, tuple(users), tuple(posts)


@cache
def generate(seed: int = DEFAULT_SEED) -> SiteData:
    """All the built-in sites' data for `seed` (cached: the objects are frozen and shared)."""
    rng = random.Random(seed)
    categories, products = _shop(rng)
    customers = _customers(rng)
    orders = _orders(rng, customers, products)
    forums, users, posts = _forum(rng)
    return SiteData(seed, categories, products, customers, orders, forums, users, posts)
