"""Deterministic JSONPlaceholder-shaped posts and comments for tests, demos and benchmarks.

The records have the target's field names (posts `userId, id, title, body`; comments
`postId, id, name, email, body`) and sizes close to JSONPlaceholder's: titles up to 79
characters, bodies of four lines up to 263, names up to 81, emails like `First_Last@domain.tld`
up to 33.
The same arguments always give the same records. No Django import: the standalone fake
target uses it too.
"""

from __future__ import annotations

import random
from typing import Any

Record = dict[str, Any]

_LOREM = """
a ab accusamus ad adipisci alias aliquam aliquid amet animi aperiam architecto aspernatur
assumenda at atque aut autem beatae blanditiis commodi consectetur consequatur consequuntur
corporis corrupti culpa cum cumque cupiditate debitis delectus deleniti deserunt dicta
dignissimos distinctio dolor dolore dolorem doloremque dolores doloribus dolorum ducimus ea
eaque earum eius eligendi enim eos error esse est et eum eveniet ex excepturi exercitationem
expedita explicabo facere facilis fuga fugiat fugit harum hic id illo illum impedit in
incidunt inventore ipsa ipsam ipsum iste itaque iure iusto labore laboriosam laborum
laudantium libero magnam magni maiores maxime minima minus modi molestiae molestias mollitia
nam natus necessitatibus nemo neque nesciunt nihil nisi nobis non nostrum nulla numquam
obcaecati odio odit officia officiis omnis optio pariatur perferendis perspiciatis placeat
porro possimus praesentium provident quae quaerat quam quas quasi qui quia quibusdam quidem
quis quisquam quo quod quos ratione recusandae reiciendis rem repellat repellendus
reprehenderit repudiandae rerum saepe sapiente sed sequi similique sint sit soluta sunt
suscipit tempora tempore temporibus tenetur totam ullam unde ut vel velit veniam veritatis
vero vitae voluptas voluptate voluptatem voluptates voluptatibus voluptatum
"""
_FIRST_NAMES = """
Eliseo Jayne Nikita Lew Hayden Presley Dallas Mallory Meghan Carmen Veronica Oswald Kariane
Nathan Maynard Christine Preston Vincenza Madelynn Mariana Noemie Khalil Sophia Jeffery Isaias
Laurie Abigail Hildegard Lurline Zola
"""
_LAST_NAMES = """
Kuhic Mueller Kunze Littel Keeling Breitenberg Veum Hodkiewicz Hettinger Fadel Wuckert Lesch
Rempel Schaden Kiehn Runolfsdottir Walsh Gerhold Reichel Koelpin Bernier Dach
"""
_DOMAINS = """
gardner.biz sydney.com garfield.biz alysha.tv althea.biz myrl.com ole.me marie.org rene.us
"""
WORDS = _LOREM.split()
FIRST_NAMES = _FIRST_NAMES.split()
LAST_NAMES = _LAST_NAMES.split()
DOMAINS = _DOMAINS.split()

USERS = 10
MAX_EMAIL_CHARS = 33
COMMENTS_PER_POST = 5


def generate_posts(count: int, *, seed: int = 0) -> list[Record]:
    """`count` posts with ids 1..count, spread evenly over userId 1..10 like JSONPlaceholder."""
    rng = random.Random(f"posts-{seed}")
    return [
        {
            "userId": 1 + (post_id - 1) * USERS // count,
            "id": post_id,
            "title": _sentence(rng, 2, 8, max_chars=79),
            "body": _paragraph(rng, lines=4, words=(3, 8), max_chars=225),
        }
        for post_id in range(1, count + 1)
    ]


def generate_comments(
    post_count: int, *, per_post: int = COMMENTS_PER_POST, seed: int = 0
) -> list[Record]:
    """`per_post` comments for each of posts 1..post_count, ids 1..post_count*per_post."""
    rng = random.Random(f"comments-{seed}")
    return [
        {
            "postId": 1 + (comment_id - 1) // per_post,
            "id": comment_id,
            "name": _sentence(rng, 2, 9, max_chars=81),
            "email": _email(rng),
            "body": _paragraph(rng, lines=4, words=(3, 8), max_chars=263),
        }
        for comment_id in range(1, post_count * per_post + 1)
    ]


def generate_dataset(
    posts: int, *, comments_per_post: int = COMMENTS_PER_POST, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Posts and their comments, as the target would serve them."""
    return (
        generate_posts(posts, seed=seed),
        generate_comments(posts, per_post=comments_per_post, seed=seed),
    )


def _sentence(rng: random.Random, low: int, high: int, *, max_chars: int = 1000) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    text = " ".join(words)
    while len(text) > max_chars and len(words) > 1:
        words.pop()
        text = " ".join(words)
    return text


def _paragraph(rng: random.Random, *, lines: int, words: tuple[int, int], max_chars: int) -> str:
    """Lines of words joined by newlines, like every body on JSONPlaceholder."""
    per_line = (max_chars - lines + 1) // lines
    return "\n".join(_sentence(rng, *words, max_chars=per_line) for _ in range(lines))


def _email(rng: random.Random) -> str:
    first, last, domain = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng.choice(DOMAINS)
    local = rng.choice((first, f"{first}_{last}", f"{first}.{last}"))
    if len(local) + len(domain) >= MAX_EMAIL_CHARS:
        local = first
    return f"{local}@{domain}"
