"""``python -m course_tools.classroom serve|simulate``: the class server, and a simulated class.

    python -m course_tools.classroom serve --room ~/course-class/room1            # this machine only
    python -m course_tools.classroom serve --room ~/course-class/room1 --host 0.0.0.0   # the room's Wi-Fi
    python -m course_tools.classroom simulate --participants 30                   # timings, kill included
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from course_tools.classroom.room import open_room, read_pairs, room_config
from course_tools.classroom.server import Limits, make_app


def _lan_address() -> str | None:
    """This machine's address on its local network (a UDP socket is connected: nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return None


def serve(args: argparse.Namespace) -> None:
    import uvicorn
    cfg = room_config(args.room, args.code)
    db = open_room(args.room, read_pairs(args.pairs) if args.pairs else None, args.n_pairs)
    limits = Limits(label_rate=args.label_rate)
    app = make_app(db, cfg["code"], cfg["instructor_key"], limits, prefix=args.prefix)
    host = args.host
    shown = (_lan_address() or host) if host in ("0.0.0.0", "::") else host
    print(f"class server for {Path(args.room).resolve()} ({len(db.pairs())} pairs, {db.count()} labels so far)\n"
          f"  participants: ClassStore('http://{shown}:{args.port}{args.prefix.rstrip('/')}', labeler='<name>', code='{cfg['code']}')\n"
          f"  join code: {cfg['code']}    instructor key: in {Path(args.room) / 'room.json'}\n"
          f"  listening on {host}:{args.port}" + ("" if host != "127.0.0.1" else
                                                 " (this machine only; --host 0.0.0.0 for a room)"),
          flush=True)
    uvicorn.run(app, host=host, port=args.port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m course_tools.classroom", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the class server on a room folder")
    s.add_argument("--room", type=Path, required=True, help="the room folder (created if missing)")
    s.add_argument("--code", help="the join code (default: the room's saved one, else a new one)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--pairs", type=Path, help="a JSONL file of pairs (pair_id, prompt, a, b) to add")
    s.add_argument("--n-pairs", type=int, default=40, help="pairs to sample when the room has none (default 40)")
    s.add_argument("--prefix", default=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", ""),
                   help="serve under this path (default: $JUPYTERHUB_SERVICE_PREFIX, set for a Hub service)")
    s.add_argument("--label-rate", type=float, default=Limits.label_rate,
                   help=f"labels per second per participant (default {Limits.label_rate:g})")
    m = sub.add_parser("simulate", help="a simulated class against a fresh server, killed and restarted midway")
    m.add_argument("--participants", type=int, default=30)
    m.add_argument("--pairs", type=int, default=20, help="pairs each participant labels")
    m.add_argument("--no-kill", action="store_true", help="do not kill the server midway")
    args = ap.parse_args(argv)
    if args.command == "serve":
        serve(args)
    else:
        from course_tools.classroom.simulate import simulate_class
        report = simulate_class(args.participants, args.pairs, kill=not args.no_kill)
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
