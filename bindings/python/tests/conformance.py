"""CPython's own asyncio tests as the oracle: run test.test_asyncio modules
with the stock event loop and with aioswift installed as the default event
loop policy, each module in a child process with a time limit, and print the
counts side by side.

    python tests/conformance.py                     # every module, stock vs aioswift
    python tests/conformance.py --quick             # the quick subset
    python tests/conformance.py test_locks test_queues --loops stock,aioswift,uvloop
    python tests/conformance.py --verbose           # name each test that differs

"Installed" means: asyncio.set_event_loop_policy(aioswift.EventLoopPolicy())
and asyncio.DefaultEventLoopPolicy replaced by it, so that the many tests
that reset the policy (set_event_loop_policy(None)) get aioswift's back.
Tests that make their own loop class (test_asyncio.utils.TestLoop, a
BaseEventLoop with a virtual clock) run on that loop whatever the policy: the
child reports how many aioswift loops a module made, so a module that never
touched aioswift shows it.

A child that outlives the time limit is killed; the tests it finished count,
the one it was running counts as an error ("hung"). Tests whose outcome on
aioswift is expected to differ are listed, with the reason, in
conformance_known.txt next to this file; they are shown apart.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)

MODULES = ["test_futures", "test_tasks", "test_taskgroups", "test_timeouts", "test_waitfor",
           "test_locks", "test_queues", "test_runners", "test_pep492", "test_context",
           # The loop's base classes and policies (their loop tests run the
           # stock loop; the policy is aioswift's).
           "test_protocols", "test_events", "test_base_events",
           # Network I/O: streams, servers, TLS, buffered protocols.
           "test_streams", "test_server", "test_sslproto", "test_ssl", "test_buffered_proto",
           # Socket operations and sendfile (their loop tests are the mixins').
           "test_sock_lowlevel", "test_sendfile",
           # Pipes, subprocesses, signals, descriptor watchers.
           "test_subprocess", "test_unix_events"]
# Loop mixins of test.test_asyncio that take any loop through create_event_loop:
# "mixin:MODULE.CLASS" runs CLASS's tests on a loop of the kind under test (the
# stock loop's is asyncio.SelectorEventLoop). A mixin without a setUp of its own
# (SubprocessTestsMixin) gets the module's Unix loop mixin for it, as CPython
# combines them (EPollEventLoopTests), and only its own tests are run. Run with
# --mixins.
MIXINS = ["mixin:test_events.EventLoopTestsMixin", "mixin:test_events.SubprocessTestsMixin",
          "mixin:test_sendfile.SendfileTestsBase", "mixin:test_sock_lowlevel.BaseSockTestsMixin"]
QUICK = ["test_locks", "test_queues", "test_context", "test_waitfor", "test_timeouts",
         "test_streams", "test_server", "test_sslproto", "test_buffered_proto",
         "test_subprocess", "test_unix_events", "mixin:test_events.EventLoopTestsMixin",
         "mixin:test_events.SubprocessTestsMixin"]
KNOWN_FILE = os.path.join(HERE, "conformance_known.txt")
NOT_BUILT = "() is not implemented yet"
MARK = "@@conformance "


# ---------------------------------------------------------------------------
# The child: one module, one loop kind; a JSON line per test on stdout.

_UVLOOP = None


def _uvloop():
    """uvloop's policy and loop classes, the loop with the one attribute
    test_asyncio.utils.TestCase reads of every loop in its tearDown
    (close_loop: loop._default_executor), which uvloop's C loop lacks: without
    it every test of a TestCase errors on uvloop, whatever it tested."""
    global _UVLOOP
    if _UVLOOP is None:
        import uvloop

        class Loop(uvloop.Loop):
            _default_executor = None

        class EventLoopPolicy(uvloop.EventLoopPolicy):
            def _loop_factory(self):
                return Loop()

        _UVLOOP = (EventLoopPolicy, Loop)
    return _UVLOOP


def _install(kind):
    import asyncio
    if kind == "stock":
        return lambda: -1
    if kind == "uvloop":
        policy_class, loop_class = _uvloop()
    else:
        sys.path.insert(0, PACKAGE_ROOT)
        import aioswift
        policy_class, loop_class = aioswift.EventLoopPolicy, aioswift.Loop
    made = [0]
    original_init = loop_class.__init__

    def counting_init(self, *args, **kwargs):
        made[0] += 1
        original_init(self, *args, **kwargs)

    try:
        loop_class.__init__ = counting_init
    except TypeError:       # a C type (uvloop): count nothing
        made[0] = -1
    asyncio.DefaultEventLoopPolicy = policy_class
    asyncio.events.DefaultEventLoopPolicy = policy_class
    asyncio.set_event_loop_policy(policy_class())
    return lambda: made[0]


def _mixin_suite(name, kind):
    """The tests of a loop mixin on a loop of `kind`, named after the mixin
    (test.test_asyncio.MODULE.MIXIN.test_x) whatever the loop."""
    import asyncio
    import importlib
    import unittest
    from test.test_asyncio import utils as test_utils

    module_name, _, mixin_name = name.partition(".")
    module = importlib.import_module(f"test.test_asyncio.{module_name}")
    mixin = getattr(module, mixin_name)
    if kind == "stock":
        factory = asyncio.SelectorEventLoop
    elif kind == "uvloop":
        factory = _uvloop()[1]
    else:
        import aioswift
        factory = aioswift.new_event_loop

    bases = (mixin,)
    if not any("setUp" in vars(cls) for cls in mixin.__mro__ if cls is not object):
        # CPython's own combination: the Unix loop mixin (a child watcher
        # attached to the loop, then EventLoopTestsMixin's setUp).
        bases += (getattr(module, "UnixEventLoopTestsMixin"),)
    own = {name for name in dir(mixin) if name.startswith("test")}

    class Tests(*bases, test_utils.TestCase):
        def create_event_loop(self):
            return factory()

    Tests.__name__ = Tests.__qualname__ = mixin_name
    Tests.__module__ = module.__name__
    names = [name for name in unittest.defaultTestLoader.getTestCaseNames(Tests) if name in own]
    return unittest.TestSuite(Tests(name) for name in names)


def _selector_classes_on(suite, kind):
    """The functional test classes that make their loop with new_loop() (a
    SelectorEventLoop: test_server, test_sslproto, test_buffered_proto)
    make a loop of `kind` instead, under the same test names."""
    if kind == "stock":
        return
    if kind == "uvloop":
        factory = _uvloop()[1]
    else:
        import aioswift
        factory = aioswift.new_event_loop
    seen = set()

    def walk(tests):
        for test in tests:
            if hasattr(test, "__iter__"):
                walk(test)
                continue
            cls = type(test)
            if cls in seen:
                continue
            seen.add(cls)
            if "Selector" in cls.__name__ and "new_loop" in vars(cls):
                cls.new_loop = lambda self: factory()

    walk(suite)


def _emit(record):
    sys.__stdout__.write(MARK + json.dumps(record) + "\n")
    sys.__stdout__.flush()


def child(module_name, kind):
    import unittest

    loops_made = _install(kind)

    class Result(unittest.TextTestResult):
        def startTest(self, test):
            super().startTest(test)
            _emit({"start": test.id()})

        def _record(self, test, outcome, detail=None):
            record = {"test": test.id(), "outcome": outcome}
            if detail:
                record["detail"] = detail[-2000:]
            _emit(record)

        def addSuccess(self, test):
            super().addSuccess(test)
            self._record(test, "pass")

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._record(test, "fail", self._exc_info_to_string(err, test))

        def addError(self, test, err):
            super().addError(test, err)
            self._record(test, "error", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record(test, "skip", reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._record(test, "pass")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._record(test, "fail", "unexpected success")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                failed = issubclass(err[0], test.failureException)
                self._record(subtest, "fail" if failed else "error",
                             self._exc_info_to_string(err, test))

    if module_name.startswith("mixin:"):
        suite = _mixin_suite(module_name[len("mixin:"):], kind)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromName(f"test.test_asyncio.{module_name}")
        _selector_classes_on(suite, kind)
    with open(os.devnull, "w") as devnull:
        runner = unittest.TextTestRunner(stream=devnull, resultclass=Result, verbosity=0)
        runner.run(suite)
    _emit({"loops_made": loops_made()})
    return 0


# ---------------------------------------------------------------------------
# The parent: children, counts, the table.

def load_known():
    known = {}
    if os.path.exists(KNOWN_FILE):
        with open(KNOWN_FILE, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, _, reason = line.partition(" ")
                known[name] = reason.strip()
    return known


def run_child(module, kind, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", module, "--loop", kind]
    env = dict(os.environ, PYTHONASYNCIODEBUG="", PYTHONWARNINGS="ignore")
    started = time.monotonic()
    # A session of its own: a child that hangs is killed with what it
    # forked (a process pool's workers), which would hold its pipes open.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=PACKAGE_ROOT, text=True, start_new_session=True)
    hung = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if hung:
        out, err = proc.communicate()
    results = {}
    current = None
    loops_made = None
    for line in out.splitlines():
        if not line.startswith(MARK):
            continue
        record = json.loads(line[len(MARK):])
        if "start" in record:
            current = record["start"]
        elif "test" in record:
            # A subtest's failure and then its test's own outcome: the worst wins.
            previous = results.get(record["test"])
            if previous is None or previous["outcome"] in ("pass", "skip"):
                results[record["test"]] = record
            if record["test"] == current:
                current = None
        elif "loops_made" in record:
            loops_made = record["loops_made"]
    if hung and current is not None:
        results[current] = {"test": current, "outcome": "error",
                            "detail": f"hung: killed after {timeout} s"}
    elif loops_made is None and not hung:
        # The child died (a crash): whatever it was running is an error.
        name = current or f"{module} (the child process)"
        results[name] = {"test": name, "outcome": "error",
                         "detail": f"child exited with {proc.returncode}:\n{err[-2000:]}"}
    return {"results": results, "hung": hung, "loops_made": loops_made,
            "seconds": time.monotonic() - started, "returncode": proc.returncode}


def counts(run):
    c = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
    for record in run["results"].values():
        c[record["outcome"]] += 1
    return c


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--quick", action="store_true", help="the quick subset: " + " ".join(QUICK))
    parser.add_argument("--mixins", action="store_true",
                        help="also the loop mixins: " + " ".join(MIXINS))
    parser.add_argument("--loops", default=None,
                        help="comma-separated: stock, aioswift, uvloop "
                             "(default: stock,aioswift, and uvloop when it is installed)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds a module may run (default 600)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="name each test that passes on the stock loop and not on another")
    parser.add_argument("--json", help="write every result to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.loop)

    modules = args.modules or (QUICK if args.quick else MODULES)
    if args.mixins:
        modules = modules + MIXINS
    if args.loops:
        kinds = args.loops.split(",")
    else:
        kinds = ["stock", "aioswift"]
        try:
            import uvloop  # noqa: F401
            kinds.insert(1, "uvloop")
        except ImportError:
            pass
    known = load_known()
    print(f"CPython {sys.version.split()[0]}: test.test_asyncio with "
          f"{', '.join(kinds)} (pass/fail/error/skip; time limit {args.timeout:.0f} s a module)")
    width = max(len(m) for m in modules) + 2
    header = f"{'module':{width}}" + "".join(f"{k:>26}" for k in kinds)
    print(header)
    print("-" * len(header))
    totals = {k: {"pass": 0, "fail": 0, "error": 0, "skip": 0} for k in kinds}
    regressions = {k: [] for k in kinds}
    everything = {}
    for module in modules:
        runs = {}
        for kind in kinds:
            runs[kind] = run_child(module, kind, args.timeout)
        everything[module] = runs
        cells = []
        for kind in kinds:
            c = counts(runs[kind])
            for key in c:
                totals[kind][key] += c[key]
            cell = f"{c['pass']}/{c['fail']}/{c['error']}/{c['skip']}"
            if runs[kind]["hung"]:
                cell += " HUNG"
            if kind == "aioswift" and runs[kind]["loops_made"] == 0:
                cell += " (0 loops)"
            cells.append(f"{cell:>26}")
        print(f"{module:{width}}" + "".join(cells), flush=True)
        if "stock" in runs:
            stock = runs["stock"]["results"]
            for kind in kinds:
                if kind == "stock":
                    continue
                theirs = runs[kind]["results"]
                for name, record in stock.items():
                    if record["outcome"] != "pass":
                        continue
                    other = theirs.get(name)
                    if other is None or other["outcome"] != "pass":
                        regressions[kind].append((name, other))
    print("-" * len(header))
    print(f"{'total':{width}}" + "".join(
        f"{'/'.join(str(totals[k][key]) for key in ('pass', 'fail', 'error', 'skip')):>26}"
        for k in kinds))
    status = 0
    for kind in kinds:
        if kind == "stock" or "stock" not in kinds:
            continue
        expected = [(n, r) for n, r in regressions[kind] if n in known]
        unbuilt = [(n, r) for n, r in regressions[kind]
                   if n not in known and r and NOT_BUILT in r.get("detail", "")]
        unexpected = [(n, r) for n, r in regressions[kind]
                      if n not in known and (n, r) not in unbuilt]
        print(f"\n{kind}: {len(regressions[kind])} tests pass on the stock loop and not here: "
              f"{len(unbuilt)} need a loop method not built yet (NotImplementedError), "
              f"{len(expected)} listed in {os.path.basename(KNOWN_FILE)}, "
              f"{len(unexpected)} other")
        if args.verbose:
            for name, record in unexpected:
                outcome = record["outcome"] if record else "missing"
                print(f"  {outcome:7} {name}")
                if record and record.get("detail") and args.verbose:
                    detail = record["detail"].strip().splitlines()
                    print("          " + (detail[-1] if detail else ""))
            for name, _ in expected:
                print(f"  known   {name}: {known[name]}")
            methods = sorted({m for _, r in unbuilt
                              for m in re.findall(r"loop\.(\w+)\(\) is not implemented yet",
                                                  r["detail"])})
            if methods:
                print(f"  not built yet: {', '.join(methods)}")
        if kind == "aioswift" and unexpected:
            status = 1
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(everything, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
