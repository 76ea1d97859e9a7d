// The Swift twin of examples/c/demo.c: "fast" finishes, "slow" is cancelled
// by main, "stubborn" is cancelled by a timer (a timeout) and catches it.
import AioSwift

func worker(_ name: String, sleeps delay: Double) async throws -> String {
  print("\(name.padding(8)) sleeps \(delay)s")
  do {
    try await sleep(delay)
    return "finished"
  } catch let cancelled as CancelledError {
    print("\(name.padding(8)) was cancelled (\(cancelled.message))")
    guard name == "stubborn" else { throw cancelled }
    currentTask()?.uncancel()  // caught: it goes on, as asyncio lets a task
    return "gave up cleanly"
  }
}

let status = try AioSwift.run { () async throws -> Int32 in
  let loop = try getRunningLoop()
  let names = ["fast", "slow", "stubborn"]
  let tasks = try zip(names, [0.05, 1.0, 10.0]).map { name, delay in
    try loop.createTask(name: name) { try await worker(name, sleeps: delay) }
  }
  try loop.callLater(0.2) { tasks[2].cancel(message: "timeout after 0.2s") }
  try await sleep(0.1)
  print("main     cancels slow")
  tasks[1].cancel(message: "main changed its mind")
  for task in tasks {
    let outcome: String
    do { outcome = try await task.value } catch { outcome = "\(error)" }
    print("main     sees \(task.name.padding(8)) -> \(outcome)")
  }
  return 0
}
print("run -> \(status)")

extension String {
  func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
