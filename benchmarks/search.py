"""Search latency over the blind index with N messages (issue 18: p99 < 100 ms at 1,000,000).

Seeds a SQLite database with N sealed messages (default 1,000,000) spread over R rooms
(room sizes Zipf-like: a few big rooms, many small ones), their text drawn from a
synthetic vocabulary with Zipf word frequencies (a few very common words, a long tail),
and every message's blind-index terms, exactly as the product computes them
(``search_tokens.index_terms`` + ``search_index.blinder`` per room key), bulk-inserted
with the term index built after the rows. Users belong to 3 to 200 rooms.

Then, in the same run, with a real ``Search`` service (database reads through the same
``Database`` as the server, decrypting and checking each hit), it times Q queries:
rare words, common words, prefixes, two-word queries (the last a prefix), the first page
of 20 results each, newest first; and, as the baseline, the newest page of 20 messages of
a room through ``MessageHistory.page`` (an indexed read by room and sequence plus
decryption: what opening a room costs). Prints p50/p95/p99/max per kind.

    nice python benchmarks/search.py                          # 1,000,000 messages
    python benchmarks/search.py --messages 20000 --queries 100 --markdown out.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402 - after the path set-up for direct runs
from streamzy.clock import SystemClock  # noqa: E402
from streamzy.services.search import Search  # noqa: E402
from streamzy.services.search_index import blinder  # noqa: E402
from streamzy.services.search_tokens import index_terms  # noqa: E402
from streamzy.storage.crypto import DataKey  # noqa: E402
from streamzy.wiring import build_services  # noqa: E402

SYLLABLES = ("ka", "to", "ri", "ne", "mo", "sa", "lu", "pe", "di", "gra", "vel", "tor", "in",
             "an", "es", "or", "qui", "zen", "bra", "lo", "mi", "ste", "cu", "pha", "rho", "th")
USER_ROOMS = (3, 10, 30, 100, 200)
CHUNK = 20_000


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4, 5))))
        if 3 <= len(word) <= 14:
            words[word] = None
    # Short words are the common ones, as in any language.
    return sorted(words, key=lambda w: (len(w), rng.random()))


def zipf_weights(n: int, s: float) -> list[float]:
    total, out = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / rank**s
        out.append(total)
    return out  # cumulative, for random.choices(cum_weights=...)


async def _room_keys(db_url: str, keys: fixtures.Secrets, rooms: int) -> tuple[
        list[int], dict[int, DataKey]]:
    ids = await fixtures._create_rooms(db_url, keys, rooms, "room")
    services = build_services(fixtures._settings(db_url, keys))
    try:
        found = {}
        for room_id in ids:
            key = await services.keyring.data_key(room_id, 1)
            assert key is not None
            found[room_id] = key
        return ids, found
    finally:
        await services.close()


def seed(workdir: Path, keys: fixtures.Secrets, messages: int, rooms: int, users: int,
         vocab: list[str], seed_value: int,
         progress: Callable[[str], None]) -> tuple[str, list[tuple[int, list[int]]], int]:
    """The database; (user id, their room ids) per user; the number of index rows."""
    rng = random.Random(seed_value)
    db_url = f"sqlite+aiosqlite:///{workdir / 'streamzy.db'}"
    fixtures.migrate(db_url)
    room_ids, room_keys = asyncio.run(_room_keys(db_url, keys, rooms))
    rooms_of = [rng.sample(room_ids, min(rooms, USER_ROOMS[i % len(USER_ROOMS)]))
                for i in range(users)]
    fixtures._bulk_users(db_url, users, "user", rooms_of)
    path = str(workdir / "streamzy.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    user_ids = [int(r[0]) for r in conn.execute(
        "SELECT id FROM users WHERE username LIKE 'user%' ORDER BY id")]
    # The term index is built once, after the rows (a sort instead of 25M random inserts).
    conn.execute("DROP INDEX ix_search_terms_term")
    room_weights = zipf_weights(len(room_ids), 0.8)
    word_weights = zipf_weights(len(vocab), 1.07)
    blinds = {room: blinder(key) for room, key in room_keys.items()}
    seqs = dict.fromkeys(room_ids, 0)
    cache: dict[tuple[int, str], str] = {}
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")  # SQLAlchemy's format
    terms_total = 0
    started = time.monotonic()
    for start in range(1, messages + 1, CHUNK):
        rows, term_rows = [], []
        count = min(CHUNK, messages - start + 1)
        rooms_here = rng.choices(room_ids, cum_weights=room_weights, k=count)
        lengths = [rng.randint(4, 14) for _ in range(count)]
        words = rng.choices(vocab, cum_weights=word_weights, k=sum(lengths))
        at = 0
        for offset in range(count):
            message_id = start + offset
            room = rooms_here[offset]
            body = " ".join(words[at:at + lengths[offset]])
            at += lengths[offset]
            seqs[room] += 1
            rows.append((message_id, room, seqs[room], user_ids[message_id % len(user_ids)],
                         f"s{message_id}", 1, room_keys[room].seal(body), now))
            blind = blinds[room]
            for term in index_terms(body):
                key = (room, term)
                hexed = cache.get(key)
                if hexed is None:
                    hexed = cache[key] = blind(term)[:32]
                term_rows.append((message_id, hexed, room, 1))
        if len(cache) > 3_000_000:
            cache.clear()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO messages (id, room_id, seq, sender_id, client_msg_id, "
                         "key_version, ciphertext, created_at, mentions_room) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)", rows)
        conn.executemany("INSERT INTO search_terms (message_id, term, room_id, key_version) "
                         "VALUES (?, ?, ?, ?)", term_rows)
        conn.execute("COMMIT")
        terms_total += len(term_rows)
        done = start + count - 1
        if done % 100_000 < CHUNK or done == messages:
            progress(f"  {done:,} messages, {terms_total:,} terms, "
                     f"{time.monotonic() - started:.0f} s")
    for room, seq in seqs.items():
        conn.execute("UPDATE rooms SET last_seq = ? WHERE id = ?", (seq, room))
    progress("  building the term index")
    conn.execute("CREATE INDEX ix_search_terms_term ON search_terms (term, message_id)")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return db_url, [(user_ids[i], rooms_of[i]) for i in range(users)], terms_total


def queries(vocab: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, query) pairs: rare and common words, prefixes, two words."""
    out = []
    size = len(vocab)  # at 20,000 words: the 100 commonest, ranks 1000+ rare, 100-3000 mid
    common, rare, middle = vocab[:size // 200 or 1], vocab[size // 20:], vocab[size // 200:size * 3 // 20]
    for i in range(n):
        kind = ("rare word", "common word", "prefix", "two words", "rare word")[i % 5]
        if kind == "rare word":
            q = rng.choice(rare)
        elif kind == "common word":
            q = rng.choice(common)
        elif kind == "prefix":
            word = rng.choice(vocab[:size // 4])
            q = word[:rng.randint(3, max(3, len(word) - 1))]
        else:
            q = f"{rng.choice(common)} {rng.choice(middle)[:5]}"
        out.append((kind, q))
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(db_url: str, keys: fixtures.Secrets, people: list[tuple[int, list[int]]],
                  plan: list[tuple[str, str]], rng: random.Random) -> tuple[
        dict[str, list[float]], dict[str, int]]:
    services = build_services(fixtures._settings(db_url, keys))
    search = Search(services.db, services.keyring, SystemClock())
    times: dict[str, list[float]] = {}
    hits: dict[str, int] = {}
    try:
        for user_id, _rooms in people:  # warm: each person's room keys unwrapped once
            await search.search(user_id, "warmup")
        for kind, query in plan:
            user_id, rooms = rng.choice(people)
            label = f"{kind} ({len(rooms)} rooms)" if kind == "common word" else kind
            started = time.perf_counter()
            page = await search.search(user_id, query, limit=20)
            times.setdefault(label, []).append((time.perf_counter() - started) * 1000)
            times.setdefault("all searches", []).append(times[label][-1])
            hits[label] = hits.get(label, 0) + len(page.hits)
            started = time.perf_counter()
            await services.history.page(rng.choice(rooms), None, 20, None)
            times.setdefault("baseline: newest 20 of a room", []).append(
                (time.perf_counter() - started) * 1000)
    finally:
        await services.close()
    return times, hits


def report(args: argparse.Namespace, seeded: float, terms: int, size: int,
           times: dict[str, list[float]], hits: dict[str, int]) -> str:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                         capture_output=True, check=False).stdout.strip()
    lines = [
        f"# Search over the blind index: {args.messages:,} messages",
        "",
        f"commit {sha}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, SQLite, "
        f"{os.cpu_count()} cores (shared machine), Python {sys.version.split()[0]}",
        "",
        f"{args.rooms} rooms (Zipf sizes), {args.users} users in 3-200 rooms each, "
        f"vocabulary {args.vocabulary:,} words (Zipf 1.07), 4-14 words a message; "
        f"{terms:,} index rows; database {size / 1e9:.2f} GB; seeded in {seeded:.0f} s.",
        f"{args.queries} searches (first page of 20, newest first, decrypted and checked), "
        "each followed by the baseline read, in-process through the `Search` service.",
        "",
        "| kind | n | mean hits | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in sorted(times, key=lambda k: (k.startswith("baseline"), k == "all searches", k)):
        values = times[label]
        mean_hits = f"{hits[label] / len(values):.1f}" if label in hits else ""
        lines.append(f"| {label} | {len(values)} | {mean_hits} | "
                     f"{statistics.median(values):.1f} | {_quantile(values, 0.95):.1f} | "
                     f"{_quantile(values, 0.99):.1f} | {max(values):.1f} |")
    p99 = _quantile(times["all searches"], 0.99)
    lines += ["", f"search p99 {p99:.1f} ms: target < 100 ms "
                  f"{'met' if p99 < 100 else 'NOT met'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--vocabulary", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workdir", default="", help="keep the database here (default: a "
                                                       "temporary directory, removed)")
    parser.add_argument("--markdown", default="", help="write the report here too")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    vocab = vocabulary(args.vocabulary, rng)
    keys = fixtures.Secrets()
    with tempfile.TemporaryDirectory(prefix="streamzy-search-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        db_url, people, terms = seed(workdir, keys, args.messages, args.rooms, args.users,
                                     vocab, args.seed, lambda line: print(line, flush=True))
        seeded = time.monotonic() - started
        size = sum(p.stat().st_size for p in workdir.glob("streamzy.db*"))
        print(f"seeded {args.messages:,} messages in {seeded:.0f} s", flush=True)
        times, hits = asyncio.run(measure(db_url, keys, people,
                                          queries(vocab, args.queries, rng), rng))
        text = report(args, seeded, terms, size, times, hits)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

