// The Swift side of the benchmarks: prints `name n seconds` per run, like
// the C programs beside it. Usage: aio-bench spawn|call_soon N
import AioSwift
import Glibc

func now() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// N trivial tasks created, then all awaited: asyncio's create_task + gather.
func spawn(_ n: Int) throws -> Double {
  try AioSwift.run { () async throws -> Double in
    let loop = try getRunningLoop()
    let start = now()
    var tasks: [AioTask<Int>] = []
    tasks.reserveCapacity(n)
    for i in 0..<n { tasks.append(try loop.createTask { i }) }
    var sum = 0
    for task in tasks { sum &+= try await task.value }
    precondition(sum == n * (n - 1) / 2, "wrong results")
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

let arguments = CommandLine.arguments
guard arguments.count == 3, let n = Int(arguments[2]), n > 0 else {
  fputs("usage: aio-bench spawn|call_soon N\n", stderr)
  exit(2)
}
let benchmarks: [String: (Int) throws -> Double] = ["spawn": spawn, "call_soon": callSoon]
guard let benchmark = benchmarks[arguments[1]] else {
  fputs("aio-bench: unknown benchmark \(arguments[1])\n", stderr)
  exit(2)
}
_ = try benchmark(min(n, 1000))  // warm-up
let seconds = try benchmark(n)
print("\(arguments[1]) \(n) \(seconds)")
precondition(LiveObjects.counts.tasks == 0 && LiveObjects.counts.loops == 0, "objects leaked")
