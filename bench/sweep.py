"""Timer-sweep benchmark: one sweep over N open cases, timed.

    .venv/bin/python bench/sweep.py [--cases 100000] [--due 0 --due 200 --due 1000]
                                    [--db postgres://...] [--profile]

For each ``--due`` a fresh database gets N open cases (bulk inserts, ``bench/bulk.py``):
each with an inbound message and a pending response deadline, plus action reminders,
milestones and supplier chasers (~1.2 timers per case). ``due`` of the deadlines are due
at ``now``. Then ``Sweeper.timers(now)``, the function the daemon's ``timers`` job calls,
fires them: each firing writes the timer's new level, a timeline note, and a composed
reminder letter with its outbox and message rows. A second sweep at the same moment
must fire nothing. Target (SQLite, this machine): under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime
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

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
TARGET_S = 1.0


async def one(cases: int, due: int, db: str | None, profile: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
        base = Path(tmp)
        url = db or f"sqlite://{base}/maild.db"
        cfg = parse_config(config_text(url), "bench.toml", str(base))
        store = Store(url, base / "raw", base)
        await store.open()
        try:
            seeded = await seed(store, cases, NOW, due_now=due)
            sweeper = Sweeper(Site.build(cfg), store)
            prof = cProfile.Profile() if profile else None
            t0 = time.perf_counter()
            if prof:
                prof.enable()
            counts = await sweeper.timers(NOW)
            if prof:
                prof.disable()
            elapsed = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = await sweeper.timers(NOW)
            idle = time.perf_counter() - t1
            letters = await Outbox.all().count()
            assert counts.fired == due and again.fired == 0 and letters == due, (counts, again)
            if prof:
                pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return {"seed_s": seeded.seconds, "timers": seeded.timers, "sweep_s": elapsed,
                    "idle_s": idle, "fired": counts.fired}
        finally:
            await store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--due", type=int, action="append", help="timers due now (repeatable)")
    ap.add_argument("--db", help="a PostgreSQL URL to an empty database (default: SQLite)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    worst = 0.0
    print(f"{'cases':>8} {'timers':>8} {'due':>6} {'seed s':>7} {'sweep s':>8} "
          f"{'per timer ms':>12} {'idle sweep ms':>13}")
    for due in args.due or [0, 200, 1000]:
        r = asyncio.run(one(args.cases, due, args.db, args.profile))
        per = r["sweep_s"] / due * 1000 if due else 0.0
        print(f"{args.cases:>8} {int(r['timers']):>8} {due:>6} {r['seed_s']:>7.1f} "
              f"{r['sweep_s']:>8.3f} {per:>12.2f} {r['idle_s'] * 1000:>13.1f}")
        worst = max(worst, r["sweep_s"])
    print(f"target: under {TARGET_S:.0f} s per sweep -> {'ok' if worst < TARGET_S else 'MISSED'}")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
