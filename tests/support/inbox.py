"""Queues of paho callbacks by kind, for the paho scenario scripts beside this one."""

import queue


class Inbox(dict):
    """A queue per kind of event ("connack", "suback", "msg"...), made at first use.

    Not a `collections.defaultdict(queue.Queue)`: its factory runs Python code
    (`Queue.__init__`), during which the interpreter may switch threads, so paho's
    network thread and the scenario's thread could each make a queue for the same
    kind, the later replacing the earlier and whatever was put in it. A `SUBACK` that
    came back within a fraction of a millisecond was lost that way (the scenario then
    waited for it in vain). `dict.setdefault` stores one queue atomically.
    """

    def __missing__(self, kind):
        return self.setdefault(kind, queue.Queue())
