"""How asyncio programs get aioswift's loop: new_event_loop, EventLoopPolicy,
install and run, as uvloop offers them."""

import asyncio

from ._loop import Loop

# asyncio's Unix policy: one loop per thread made with _loop_factory, and
# (up to 3.13) the child watcher methods asyncio code calls. aioswift's
# loops reap their own children (the core does), so a watcher set there
# watches nothing of theirs, as with uvloop.
_BasePolicy = getattr(asyncio.unix_events, "_UnixDefaultEventLoopPolicy", None) or \
    getattr(asyncio.events, "BaseDefaultEventLoopPolicy", None) or \
    getattr(asyncio.events, "_BaseDefaultEventLoopPolicy")


def new_event_loop():
    """A new aioswift event loop (asyncio.run(main, loop_factory=...) and
    asyncio.Runner(loop_factory=...) take this)."""
    return Loop()


class EventLoopPolicy(_BasePolicy):
    """The event loop policy whose loops are aioswift's:
    asyncio.set_event_loop_policy(aioswift.EventLoopPolicy())."""

    _loop_factory = Loop

    def __repr__(self):
        return f"<{type(self).__name__}>"


def install():
    """Make aioswift the loop of every asyncio program in this process from
    now on (asyncio.new_event_loop, asyncio.run, asyncio.Runner)."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None):
    """asyncio.run(main) on a new aioswift loop: run the coroutine `main` to
    its end, then cancel the tasks left, shut down async generators and the
    default executor, and close the loop."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
