"""The guide's section 5.4 (a Queue between processes) with a process Channel.

The guide passes a multiprocessing.Queue to two Process objects and ends the stream with
an "EOF" sentinel. Here a Channel(processes=True) carries the items and close() ends the
stream; the producer and the consumer run as tasks of a processes TaskGroup, which starts,
joins and (on failure) kills them. A process channel reaches a worker when the worker
starts, so it is given once in initargs; tasks then take it as an ordinary argument.

Run: python examples/process_channel.py
"""

from __future__ import annotations

import os

import anypool


def keep(*channels: object) -> None:
    """The workers' initializer: receiving the channel as they start is all it takes."""


def producer(channel: anypool.Channel[str], n: int) -> int:
    with channel:  # close() ends the consumer's loop: no "EOF" sentinel needed
        for i in range(n):
            channel.put(f"msg-{i} from process {os.getpid()}")
    return n


def consumer(channel: anypool.Channel[str]) -> list[str]:
    return list(channel)


def main() -> None:
    channel: anypool.Channel[str] = anypool.Channel(3, processes=True)
    with anypool.TaskGroup("processes", workers=2, initializer=keep, initargs=(channel,)) as tg:
        received = tg.spawn(consumer, channel)
        tg.spawn(producer, channel, 5)
    for message in received.result():
        print("received:", message)


if __name__ == "__main__":
    main()
