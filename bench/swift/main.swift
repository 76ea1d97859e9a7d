// The Swift side of the benchmarks: prints `name n seconds` per run, like
// the C programs beside it. Usage:
//   aio-bench spawn|call_soon N | spawn N ROUNDS
//   aio-bench queue_pingpong N | lock_contention TASKS ITERS | event_fanout TASKS ROUNDS
//   aio-bench gather N | taskgroup N | wait_for N | to_thread N [CALLERS]
// queue_pingpong, lock_contention and event_fanout are the twins of
// bench/c/sync.c and bench/py/sync.py; gather, taskgroup, wait_for and
// to_thread those of bench/c/combinators.c and bench/py/combinators.py (see
// there for what each one times and checks).
import AioSwift
import Glibc

func now() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// N trivial tasks created, then all awaited: asyncio's create_task + gather;
/// `rounds` times over, as bench/c/spawn.c does for its scaling rows.
func spawn(_ n: Int, rounds: Int = 1) throws -> Double {
  try AioSwift.run { () async throws -> Double in
    let loop = try getRunningLoop()
    var tasks: [AioTask<Int>] = []
    tasks.reserveCapacity(n)
    let start = now()
    for _ in 0..<rounds {
      for i in 0..<n { tasks.append(try loop.createTask { i }) }
      var sum = 0
      for task in tasks { sum &+= try await task.value }
      precondition(sum == n * (n - 1) / 2, "wrong results")
      tasks.removeAll(keepingCapacity: true)
    }
    return now() - start
  }
}

/// N callbacks scheduled with call_soon; the last one stops the loop.
func callSoon(_ n: Int) throws -> Double {
  let loop = try Loop()
  defer { try? loop.close() }
  var count = 0
  let start = now()
  for _ in 0..<n - 1 { try loop.callSoon { count += 1 } }
  try loop.callSoon { count += 1; try loop.stop() }
  try loop.runForever()
  precondition(count == n, "wrong count")
  return now() - start
}

// MARK: synchronization primitives and queues

struct BenchFailure: Error, CustomStringConvertible {
  let description: String
}

/// Throws (and so fails the benchmark with `message`) unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
  if !condition { throw BenchFailure(description: message()) }
}

/// Runs `body` as the main task twice on one Runner, an untimed warm-up and
/// the timed run (loop.run_until_complete(main()) twice, as sync.py does);
/// returns what the second run returned.
func warmThenTime<T>(_ body: @escaping () async throws -> T) throws -> T {
  let runner = Runner()
  _ = try runner.run(body)
  let result = try runner.run(body)
  try runner.close()
  return result
}

/// ping: `for i in 0..<n { put(i) on q1; get the reply from q2 }`; pong:
/// `for _ in 0..<n { put(get from q1) on q2 }`. Times creating the queues and
/// both tasks and running them to completion.
func queuePingpong(_ n: Int) async throws -> Double {
  let loop = try getRunningLoop()
  let start = now()
  let q1 = Queue<Int>(maxsize: 0), q2 = Queue<Int>(maxsize: 0)
  let ping = try loop.createTask { () async throws -> Int in
    for i in 0..<n {
      try await q1.put(i)
      let reply = try await q2.get()
      try expect(reply == i, "ping \(i) got the reply \(reply)")
    }
    return n
  }
  let pong = try loop.createTask { () async throws -> Int in
    for i in 0..<n {
      let item = try await q1.get()
      try expect(item == i, "pong \(i) got \(item)")
      try await q2.put(item)
    }
    return n
  }
  let pings = try await ping.value
  let pongs = try await pong.value
  let seconds = now() - start
  try expect(pings == n && pongs == n, "round trips: ping \(pings), pong \(pongs) of \(n)")
  try expect(q1.count == 0 && q2.count == 0, "queues hold \(q1.count) and \(q2.count) items at the end")
  return seconds
}

/// `tasks` tasks, each `iters` times: acquire; sleep(0); release (asyncio's
/// `async with lock: await asyncio.sleep(0)`). Times creating the lock and
/// the tasks and running all to completion.
func lockContention(tasks: Int, iters: Int) async throws -> Double {
  let loop = try getRunningLoop()
  let start = now()
  let lock = Lock()
  var holder = -1
  var sections = 0
  var workers: [AioTask<Int>] = []
  workers.reserveCapacity(tasks)
  for me in 0..<tasks {
    workers.append(try loop.createTask { () async throws -> Int in
      for _ in 0..<iters {
        try await lock.acquire()
        try expect(holder == -1, "worker \(me) acquired the lock while worker \(holder) holds it")
        holder = me
        try await AioSwift.sleep(0)
        try expect(holder == me, "worker \(me) releases a lock held by \(holder)")
        holder = -1
        sections += 1
        try lock.release()
      }
      return iters
    })
  }
  for (i, worker) in workers.enumerated() {
    let done = try await worker.value
    try expect(done == iters, "worker \(i) finished with \(done) sections")
  }
  let seconds = now() - start
  try expect(sections == tasks * iters, "\(sections) critical sections, expected \(tasks * iters)")
  try expect(!lock.isLocked, "the lock is still locked at the end")
  return seconds
}

/// Each round: `tasks` tasks await one Event; once all wait, set() it and
/// await a second Event that the last woken task sets. Times set() to main
/// resuming, summed over the rounds; returns (timed, setup) seconds.
func eventFanout(tasks: Int, rounds: Int) async throws -> (Double, Double) {
  let loop = try getRunningLoop()
  var timed = 0.0, setup = 0.0
  for _ in 0..<rounds {
    let setupStart = now()
    let event = Event(), allDone = Event()
    var started = 0, finished = 0
    var waiters: [AioTask<Void>] = []
    waiters.reserveCapacity(tasks)
    for _ in 0..<tasks {
      waiters.append(try loop.createTask { () async throws in
        started += 1
        try await event.wait()
        finished += 1
        if finished == tasks { allDone.set() }
      })
    }
    while started < tasks { try await AioSwift.sleep(0) }
    try expect(finished == 0, "\(finished) tasks finished before the event was set")
    setup += now() - setupStart
    let start = now()
    event.set()
    try await allDone.wait()
    timed += now() - start
    try expect(finished == tasks, "\(finished) of \(tasks) tasks woke up")
    for (i, waiter) in waiters.enumerated() {
      try expect(waiter.isDone, "task \(i) not done once all woke")
      try waiter.result()
    }
  }
  return (timed, setup)
}

// MARK: task combinators

/// `try await gather(tasks)` over n trivial tasks (task i returns i). Times
/// creating the tasks, gathering them and dropping them; checks every result.
func gatherTasks(_ n: Int) async throws -> Double {
  let loop = try getRunningLoop()
  let start = now()
  var tasks: [AioTask<Int>] = []
  tasks.reserveCapacity(n)
  for i in 0..<n { tasks.append(try loop.createTask { i }) }
  let results = try await gather(tasks)
  tasks = []
  let seconds = now() - start
  try expect(results.count == n, "gather gave \(results.count) results for \(n) tasks")
  for (i, result) in results.enumerated() where result != i {
    throw BenchFailure(description: "task \(i) gave \(result)")
  }
  try expect(loop.allTasks().count == 1, "\(loop.allTasks().count - 1) tasks besides main are pending")
  return seconds
}

/// A TaskGroup creating n trivial tasks (`async with TaskGroup() as tg:
/// for ...: tg.create_task(noop())`). Times all of it; checks every task ran.
func taskGroupTasks(_ n: Int) async throws -> Double {
  let loop = try getRunningLoop()
  var ran = 0
  let start = now()
  try await taskGroup { group in
    for _ in 0..<n { try group.createTask { ran += 1 } }
  }
  let seconds = now() - start
  try expect(ran == n, "\(ran) of \(n) tasks ran")
  try expect(loop.allTasks().count == 1, "\(loop.allTasks().count - 1) tasks besides main are pending")
  return seconds
}

/// n times `try await waitFor(future, timeout: 10)` on a future done before
/// the clock starts (result 42); checks every value.
func waitForDone(_ n: Int) async throws -> Double {
  let loop = try getRunningLoop()
  let future = loop.createFuture(of: Int.self)
  try future.setResult(42)
  let start = now()
  for i in 0..<n {
    let value = try await waitFor(future, timeout: 10)
    try expect(value == 42, "waitFor \(i) gave \(value)")
  }
  let seconds = now() - start
  try expect(loop.allTasks().count == 1, "\(loop.allTasks().count - 1) tasks besides main are pending")
  return seconds
}

/// `callers` tasks, each `try await toThread { i }` one call after the
/// other, n calls in all (the first callers take the remainder). Times
/// creating the callers and running them to completion; checks every value.
func toThreadRoundTrips(_ n: Int, callers: Int) async throws -> Double {
  try expect(callers <= n, "\(callers) callers for \(n) calls")
  let loop = try getRunningLoop()
  let start = now()
  var workers: [AioTask<Int>] = []
  workers.reserveCapacity(callers)
  var first = 0
  for c in 0..<callers {
    let count = n / callers + (c < n % callers ? 1 : 0), from = first
    first += count
    workers.append(try loop.createTask { () async throws -> Int in
      for i in from..<from + count {
        let value = try await toThread { i }
        try expect(value == i, "toThread { \(i) } gave \(value)")
      }
      return count
    })
  }
  var done = 0
  for worker in workers { done += try await worker.value }
  let seconds = now() - start
  try expect(done == n, "\(done) of \(n) calls made")
  return seconds
}

func nanos(_ seconds: Double, per n: Int) -> Double { (seconds / Double(n) * 1e10).rounded() / 10 }

/// The sync benchmarks: their default counts and a run that prints nothing
/// but returns the output line.
let syncBenchmarks: [String: (counts: [Int], run: ([Int]) throws -> String)] = [
  "queue_pingpong": ([100_000], { c in
    let seconds = try warmThenTime { try await queuePingpong(c[0]) }
    return "queue_pingpong \(c[0]) \(seconds) per_roundtrip_ns=\(nanos(seconds, per: c[0]))"
  }),
  "lock_contention": ([100, 1000], { c in
    let seconds = try warmThenTime { try await lockContention(tasks: c[0], iters: c[1]) }
    let n = c[0] * c[1]
    return "lock_contention \(n) \(seconds) tasks=\(c[0]) iters=\(c[1]) per_op_ns=\(nanos(seconds, per: n))"
  }),
  "event_fanout": ([10_000, 10], { c in
    let runner = Runner()
    _ = try runner.run { try await eventFanout(tasks: c[0], rounds: 1) }  // one untimed warm-up round
    let (seconds, setup) = try runner.run { try await eventFanout(tasks: c[0], rounds: c[1]) }
    try runner.close()
    let n = c[0] * c[1]
    return "event_fanout \(n) \(seconds) tasks=\(c[0]) rounds=\(c[1]) setup_seconds=\(setup) "
      + "per_wakeup_ns=\(nanos(seconds, per: n))"
  }),
]

/// The combinator benchmarks, run like the sync ones.
let combinatorBenchmarks: [String: (counts: [Int], run: ([Int]) throws -> String)] = [
  "gather": ([100_000], { c in
    let seconds = try warmThenTime { try await gatherTasks(c[0]) }
    return "gather \(c[0]) \(seconds) per_task_ns=\(nanos(seconds, per: c[0]))"
  }),
  "taskgroup": ([100_000], { c in
    let seconds = try warmThenTime { try await taskGroupTasks(c[0]) }
    return "taskgroup \(c[0]) \(seconds) per_task_ns=\(nanos(seconds, per: c[0]))"
  }),
  "wait_for": ([100_000], { c in
    let seconds = try warmThenTime { try await waitForDone(c[0]) }
    return "wait_for \(c[0]) \(seconds) per_call_ns=\(nanos(seconds, per: c[0]))"
  }),
  "to_thread": ([10_000, 1], { c in
    let seconds = try warmThenTime { try await toThreadRoundTrips(c[0], callers: c[1]) }
    return "to_thread \(c[0]) \(seconds) callers=\(c[1]) per_roundtrip_ns=\(nanos(seconds, per: c[0]))"
  }),
]

let arguments = CommandLine.arguments
let usage = "usage: aio-bench spawn|call_soon N | spawn N ROUNDS | queue_pingpong N | lock_contention TASKS ITERS"
  + " | event_fanout TASKS ROUNDS | gather N | taskgroup N | wait_for N | to_thread N [CALLERS]\n"
if arguments.count >= 2, let sync = syncBenchmarks[arguments[1]] ?? combinatorBenchmarks[arguments[1]] {
  let given = arguments.dropFirst(2).map { Int($0) }
  guard given.count <= sync.counts.count, given.allSatisfy({ ($0 ?? 0) > 0 }) else {
    fputs(usage, stderr)
    exit(2)
  }
  let counts = given.map { $0! } + sync.counts.dropFirst(given.count)
  let line: String
  do {
    line = try sync.run(counts)
  } catch {
    // One readable line for run.sh (a top-level throw prints a crash report).
    fputs("aio-bench \(arguments[1]): \(error)\n", stderr)
    exit(3)
  }
  let live = LiveObjects.counts
  precondition(live.tasks == 0 && live.loops == 0 && live.primitives == 0 && live.queues == 0,
               "objects leaked: \(live)")
  print(line)
  exit(0)
}
if arguments.count == 4, arguments[1] == "spawn", let n = Int(arguments[2]), n > 0,
  let rounds = Int(arguments[3]), rounds > 0
{
  _ = try spawn(min(n, 1000))  // warm-up
  let seconds = try spawn(n, rounds: rounds)
  print("spawn \(n * rounds) \(seconds) batch=\(n) rounds=\(rounds) "
    + "per_task_ns=\(nanos(seconds, per: n * rounds))")
  precondition(LiveObjects.counts.tasks == 0 && LiveObjects.counts.loops == 0, "objects leaked")
  exit(0)
}
guard arguments.count == 3, let n = Int(arguments[2]), n > 0 else {
  fputs(usage, stderr)
  exit(2)
}
let benchmarks: [String: (Int) throws -> Double] = ["spawn": { try spawn($0) }, "call_soon": callSoon]
guard let benchmark = benchmarks[arguments[1]] else {
  fputs("aio-bench: unknown benchmark \(arguments[1])\n", stderr)
  exit(2)
}
_ = try benchmark(min(n, 1000))  // warm-up
let seconds = try benchmark(n)
print("\(arguments[1]) \(n) \(seconds)")
precondition(LiveObjects.counts.tasks == 0 && LiveObjects.counts.loops == 0, "objects leaked")
