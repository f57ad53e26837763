"""Readers' votes (👍/👎 under each proverb), in the bot's database (the subscriptions' engine and migrations).

bot.app opens them with the database; while it is unavailable, the vote buttons answer that votes are not
collected. `python -m bot stats` reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import charlm

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ballot:
    """One reader's vote on one proverb, with everything needed to tell which proverb it was."""

    user_id: int
    bundle: str
    bundle_sha256: str
    seed: int
    prefix: str
    temperature: float | None  # the user's t= (None: the bundle's own)
    settings: charlm.Settings  # the decoding settings in effect
    text: str
    value: int  # +1 or -1

    @property
    def settings_json(self) -> str:
        return json.dumps(dataclasses.asdict(self.settings), sort_keys=True)

    @property
    def proverb(self) -> str:
        """The proverb's identity: bundle version, seed, prefix and settings (they determine the text)."""
        key = json.dumps([self.bundle_sha256, self.seed, self.prefix, self.settings_json], ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tally:
    """Votes on one bundle (version) or one proverb."""

    votes: int
    likes: int

    @property
    def dislikes(self) -> int:
        return self.votes - self.likes

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.votes if self.votes else None


class Votes:
    """The votes table, on an open engine (the subscriptions store's). Every method is one transaction."""

    def __init__(self, engine: "AsyncEngine"):
        self.engine = engine

    async def cast(self, ballot: Ballot, now: datetime | None = None) -> int:
        """Record the vote; -> the user's previous vote on that proverb (0: none; equal to ballot.value: unchanged)."""
        from sqlalchemy import insert, select, update
        from sqlalchemy.exc import IntegrityError

        from .subscriptions.schema import votes

        now = now or datetime.now(timezone.utc)
        key = ballot.proverb
        where = (votes.c.user_id == ballot.user_id) & (votes.c.proverb == key)
        for attempt in range(2):
            try:
                async with self.engine.begin() as conn:
                    old = (await conn.execute(select(votes.c.value).where(where))).scalar()
                    if old is None:
                        await conn.execute(insert(votes).values(
                            user_id=ballot.user_id, proverb=key, bundle=ballot.bundle, bundle_sha256=ballot.bundle_sha256,
                            seed=ballot.seed, prefix=ballot.prefix, temperature=ballot.temperature,
                            settings=ballot.settings_json, text_sha256=hashlib.sha256(ballot.text.encode("utf-8")).hexdigest(),
                            value=ballot.value, created_at=now, updated_at=now))
                        return 0
                    if old != ballot.value:
                        await conn.execute(update(votes).where(where).values(value=ballot.value, updated_at=now))
                    return old
            except IntegrityError:  # a second press of the same user inserted first (databases without SQLite's lock)
                if attempt:
                    raise
        return 0  # not reached

    async def tally(self, bundle: str, bundle_sha256: str | None = None) -> Tally:
        """Votes and likes for a bundle (one version of it when bundle_sha256 is given)."""
        from sqlalchemy import case, func, select

        from .subscriptions.schema import votes

        cond = votes.c.bundle == bundle
        if bundle_sha256 is not None:
            cond = cond & (votes.c.bundle_sha256 == bundle_sha256)
        q = select(func.count(), func.coalesce(func.sum(case((votes.c.value > 0, 1), else_=0)), 0)).where(cond)
        async with self.engine.connect() as conn:
            n, likes = (await conn.execute(q)).one()
        return Tally(int(n), int(likes))

    async def report(self, top: int = 10) -> dict:
        """Per bundle version: votes, likes, like rate; the `top` most liked and most disliked proverbs."""
        from sqlalchemy import case, func, select

        from .commands import ProverbArgs, replay_command
        from .subscriptions.schema import votes

        likes = func.sum(case((votes.c.value > 0, 1), else_=0)).label("likes")
        n = func.count().label("votes")
        per_bundle = select(votes.c.bundle, votes.c.bundle_sha256, n, likes, func.max(votes.c.updated_at).label("last")) \
            .group_by(votes.c.bundle, votes.c.bundle_sha256).order_by(votes.c.bundle, func.max(votes.c.updated_at))
        # one row per proverb as votes count them (Ballot.proverb: bundle version, seed, prefix, settings): `/sufi
        # seed=21` and `/sufi t=0.6 seed=21` (0.6 being sufi's own) are one proverb, and were two rows when the
        # user's t= was grouped by too (issue 24). The other columns follow from the key; max(temperature) is a
        # t= some reader typed, if any: its replay gives the same text under any TEMPERATURE
        cols = (votes.c.bundle, votes.c.bundle_sha256, votes.c.seed, votes.c.prefix, votes.c.temperature,
                votes.c.settings, votes.c.text_sha256)
        per_proverb = select(votes.c.proverb, *(func.max(c).label(c.name) for c in cols), n, likes).group_by(votes.c.proverb)
        async with self.engine.connect() as conn:
            bundles = (await conn.execute(per_bundle)).all()
            proverbs = (await conn.execute(per_proverb)).all()

        def proverb_row(r) -> dict:
            t = Tally(int(r.votes), int(r.likes))
            return {"bundle": r.bundle, "bundle_sha256": r.bundle_sha256, "seed": r.seed, "prefix": r.prefix,
                    "temperature": r.temperature, "settings": json.loads(r.settings), "text_sha256": r.text_sha256,
                    "votes": t.votes, "likes": t.likes, "dislikes": t.dislikes, "like_rate": t.like_rate,
                    "replay": replay_command(r.bundle, ProverbArgs(r.prefix, r.temperature), r.seed)}

        rows = [proverb_row(r) for r in proverbs]
        liked = sorted((r for r in rows if r["likes"]), key=lambda r: (-r["likes"], r["dislikes"], r["replay"]))[:top]
        disliked = sorted((r for r in rows if r["dislikes"]), key=lambda r: (-r["dislikes"], r["likes"], r["replay"]))[:top]
        out = []
        for r in bundles:
            t = Tally(int(r.votes), int(r.likes))
            out.append({"bundle": r.bundle, "bundle_sha256": r.bundle_sha256, "votes": t.votes, "likes": t.likes,
                        "dislikes": t.dislikes, "like_rate": t.like_rate,
                        "last_vote": r.last.replace(tzinfo=timezone.utc).isoformat(timespec="seconds") if r.last else None})
        return {"bundles": out, "most_liked": liked, "most_disliked": disliked}


def format_report(report: dict) -> str:
    """The stats report as aligned text."""
    def rate(x: float | None) -> str:
        return "—" if x is None else f"{x:.0%}"

    if not report["bundles"]:
        return "no votes yet"
    lines = [f"{'bundle':<16} {'version':<12} {'votes':>6} {'👍':>5} {'👎':>5} {'like rate':>9}"]
    for b in report["bundles"]:
        lines.append(f"{b['bundle']:<16} {b['bundle_sha256'][:12]:<12} {b['votes']:>6} {b['likes']:>5} {b['dislikes']:>5} "
                     f"{rate(b['like_rate']):>9}")
    for title, key in (("most liked", "most_liked"), ("most disliked", "most_disliked")):
        lines.append("")
        lines.append(f"{title}:")
        rows = report[key]
        lines.extend(f"  👍 {r['likes']:<4} 👎 {r['dislikes']:<4} {r['replay']}   ({r['bundle_sha256'][:12]})" for r in rows)
        if not rows:
            lines.append("  (none)")
    return "\n".join(lines)

