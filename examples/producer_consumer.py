"""The guide's producer-consumer (sections 3.5 and 4) with a Channel and a TaskGroup.

The guide builds a bounded queue from a Condition, then uses queue.Queue with
task_done()/join() and daemon threads. Here the bounded, closeable Channel replaces both:
put() waits while it is full, close() ends the consumers' loops once they have drained
it, and the TaskGroup joins every thread (no daemon threads, no sentinel values, no
task_done bookkeeping) and raises if any of them failed.

Run: python examples/producer_consumer.py
"""

from __future__ import annotations

import random
import time

import anypool


def producer(channel: anypool.Channel[str], n: int) -> int:
    with channel:  # closes the channel when the producer is done
        for i in range(n):
            time.sleep(random.uniform(0.001, 0.005))
            channel.put(f"item-{i}")  # waits while the channel holds 5 items
    return n


def consumer(channel: anypool.Channel[str], name: str) -> list[str]:
    consumed = []
    for item in channel:  # ends once the channel is closed and drained
        time.sleep(random.uniform(0.002, 0.01))
        consumed.append(item)
    print(f"{name} consumed {len(consumed)} items")
    return consumed


def main() -> None:
    channel: anypool.Channel[str] = anypool.Channel(5)
    with anypool.TaskGroup("threads", workers=3) as tg:
        tg.spawn(producer, channel, 30)
        consumers = [tg.spawn(consumer, channel, f"consumer-{k}") for k in range(2)]
    items = sorted(item for c in consumers for item in c.result())
    print(f"all {len(items)} items consumed exactly once: {len(set(items)) == 30}")


if __name__ == "__main__":
    main()
