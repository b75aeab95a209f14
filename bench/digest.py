"""Weekly-digest benchmark: the Monday digest over N cases, timed.

    .venv/bin/python bench/digest.py [--cases 100000] [--open-share 0.3] [--db URL] [--profile]

A fresh database gets N cases (bulk inserts, ``bench/bulk.py``): ``open-share`` of them
open (opened in the last 30 days, each with a response deadline, some overdue, some at
risk; action items, milestones, supplier chasers), the rest closed over the past year.
Three managers: one for every department, one for 市场部, one for 采购部 and 质量部.
Timed: ``Sweeper.digest(now)``, what the daemon runs on Monday 09:00 — for each manager
the SQL aggregates, the lists, rendering (HTML + text), composing and queueing the letter
with its ``digests`` row. Then the same per manager, aggregates only. Target (SQLite, this
machine): under 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bulk import config_text, seed  # noqa: E402

from maild.config import parse_config  # noqa: E402
from maild.runners.sweeper import Sweeper  # noqa: E402
from maild.site import Site  # noqa: E402
from maild.store import Store  # noqa: E402
from maild.store.models import Outbox  # noqa: E402

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
TARGET_S = 3.0


async def run(cases: int, open_share: float, db: str | None, profile: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
        base = Path(tmp)
        url = db or f"sqlite://{base}/maild.db"
        cfg = parse_config(config_text(url), "bench.toml", str(base))
        store = Store(url, base / "raw", base)
        await store.open()
        try:
            seeded = await seed(store, cases, NOW, due_now=round(cases * open_share * 0.05),
                                open_share=open_share)
            sweeper = Sweeper(Site.build(cfg), store)
            # make the ladder realistic: overdue deadlines climb before the digest is made
            await sweeper.timers(NOW - timedelta(minutes=1))
            print(f"seeded {seeded.cases} cases ({seeded.open} open, {seeded.timers} timers) "
                  f"in {seeded.seconds:.1f} s")
            prof = cProfile.Profile() if profile else None
            if prof:
                prof.enable()
            t0 = time.perf_counter()
            sent = await sweeper.digest(NOW)
            total = time.perf_counter() - t0
            if prof:
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            assert sent == 3 and await Outbox.filter(letter="digest").count() == 3
            print(f"digest for {sent} managers (aggregate, render, queue): {total:.3f} s")
            for m in cfg.directory.managers:
                t1 = time.perf_counter()
                ctx = await sweeper.digest_context(NOW, m.departments, m.name)
                scope = ", ".join(m.departments) or "all departments"
                print(f"  {m.name} ({scope}): {time.perf_counter() - t1:.3f} s, "
                      f"{ctx['kpi']['open']} open, {ctx['kpi']['overdue']} overdue, "
                      f"{ctx['kpi']['opened']} opened last week")
            ok = total < TARGET_S
            print(f"target: under {TARGET_S:.0f} s -> {'ok' if ok else 'MISSED'}")
            return 0 if ok else 1
        finally:
            await store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--open-share", type=float, default=0.3)
    ap.add_argument("--db", help="a PostgreSQL URL to an empty database (default: SQLite)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    return asyncio.run(run(args.cases, args.open_share, args.db, args.profile))


if __name__ == "__main__":
    sys.exit(main())
