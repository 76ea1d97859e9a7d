"""The quick subset of the conformance run (tests/conformance.py): CPython's
own asyncio tests of locks, queues, contexts, wait_for and timeouts, and of
streams, servers, SSLProtocol and buffered protocols, with aioswift as the
default event loop, each module in a child process. Every test that passes
on the stock loop must pass on aioswift (but those listed with their reason
in conformance_known.txt). `make conformance` runs the whole list."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance  # noqa: E402


@pytest.mark.parametrize("module", conformance.QUICK)
def test_cpython_asyncio_tests_pass_on_aioswift(module):
    stock = conformance.run_child(module, "stock", timeout=300)
    ours = conformance.run_child(module, "aioswift", timeout=300)
    assert not ours["hung"], f"{module} hung on aioswift"
    assert ours["loops_made"], f"{module} made no aioswift loop: the policy was not used"
    known = conformance.load_known()
    lost = sorted(name for name, record in stock["results"].items()
                  if record["outcome"] == "pass" and name not in known
                  and ours["results"].get(name, {}).get("outcome") != "pass")
    # A test that needs a loop method not built yet (pipes, datagrams, ...)
    # says so: those are counted apart, as conformance.py counts them.
    unbuilt = [name for name in lost
               if conformance.NOT_BUILT in ours["results"].get(name, {}).get("detail", "")]
    lost = [name for name in lost if name not in unbuilt]
    details = {name: ours["results"].get(name, {}).get("detail", "missing")[-600:]
               for name in lost[:5]}
    assert lost == [], details
    assert conformance.counts(ours)["pass"] + len(unbuilt) >= conformance.counts(stock)["pass"]
