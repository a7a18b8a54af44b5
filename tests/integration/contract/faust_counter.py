"""A downstream Faust app that logs every record it reads from one topic: ``partition offset key`` a line.

Run as ``python faust_counter.py BOOTSTRAP TOPIC GROUP OUT DATADIR GUARANTEE``; the test compares the
lines with the topic's committed records. It is a subprocess, so Faust's imports and event loop stay
out of the test process.
"""

from __future__ import annotations

import sys

import faust


def main() -> None:
    bootstrap, topic, group, out_path, datadir, guarantee = sys.argv[1:7]
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        datadir=datadir,
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee=guarantee,
        broker_commit_every=50,
        broker_commit_interval=0.5,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    out = open(out_path, "a", buffering=1)  # noqa: SIM115 - one line per record, for the app's lifetime

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            key = (message.key or b"").decode("utf-8", "replace")
            out.write(f"{message.partition} {message.offset} {key}\n")

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
