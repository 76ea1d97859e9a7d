// A user's program in Swift 6 mode: top-level code (isolated to the main
// actor), async let, task groups and Task {} inside tasks of the loop, and
// asyncio cancellation reaching Swift's own awaits. Each case prints
// "ok NAME" or "FAIL NAME: why"; the program exits 1 if any failed, and a
// watchdog ends it if anything hangs.
import AioSwift
import Glibc

alarm(60)
nonisolated(unsafe) var failures = 0

func check(_ name: String, _ condition: Bool, _ why: @autoclosure () -> String = "") {
  if condition {
    print("ok \(name)")
  } else {
    failures += 1
    print("FAIL \(name): \(why())")
  }
  fflush(nil)
}

func seconds(since start: Double) -> Double { (try? getRunningLoop().time() - start) ?? 0 }

// 1. The README's example, pasted at top level: the body is @Sendable, so it
// runs on the loop.
let greeting = try AioSwift.run { @Sendable () async throws -> String in
  let loop = try getRunningLoop()
  let slow = try loop.createTask { () async throws -> String in
    try await sleep(10)
    return "never"
  }
  try loop.callLater(0.1) { slow.cancel(message: "too slow") }
  do {
    return try await slow.value
  } catch let cancelled as CancelledError {
    return "cancelled: \(cancelled.message)"
  }
}
check("readme example", greeting == "cancelled: too slow", greeting)

// 2. A body isolated to the main actor (a plain closure here) cannot run on
// the loop: refused at once, not left hanging.
var mainActorState = 0
do {
  _ = try AioSwift.run { mainActorState += 1 }
  check("main-actor body refused", false, "it ran")
} catch let error as RuntimeError {
  check("main-actor body refused", error.message.contains("MainActor"), error.message)
}

func value(_ n: Int, after delay: Double) async throws -> Int {
  try await sleep(delay)
  return n
}

/// Runs one case in asyncio.run and checks what it returns.
func runCase(_ name: String, _ expected: String,
             _ body: @escaping @Sendable () async throws -> String) {
  do {
    let got = try AioSwift.run(body)
    check(name, got == expected, got)
  } catch {
    check(name, false, "\(error)")
  }
}

// 3. async let inside a task of the loop: each child waits on its own.
runCase("async let", "3") {
  async let a = value(1, after: 0.02)
  async let b = value(2, after: 0.01)
  let (x, y) = try await (a, b)
  return "\(x + y)"
}

// 4. A task group of Swift's own.
runCase("task group", "15") {
  let sum = try await withThrowingTaskGroup(of: Int.self) { group in
    for n in 1...5 { group.addTask { try await value(n, after: 0.001 * Double(n)) } }
    var total = 0
    for try await n in group { total += n }
    return total
  }
  return "\(sum)"
}

// 5. Task {} runs off the loop: a clear error naming the alternative.
runCase("Task {} off the loop", "refused") {
  let off = Task { () async -> String in
    do {
      try await sleep(0.001)
      return "ran"
    } catch {
      return "\(error)".contains("executorPreference") ? "refused" : "\(error)"
    }
  }
  return await off.value
}

// 6. A Task preferring the loop as its executor waits on its own.
runCase("Task(executorPreference:)", "7") {
  let loop = try getRunningLoop()
  let onLoop = Task(executorPreference: loop) { () async throws -> Int in
    try await value(7, after: 0.001)
  }
  return "\(try await onLoop.value)"
}

// 7. asyncio cancellation reaches Task.sleep.
runCase("cancel reaches Task.sleep", "cancelled wake up true") {
  let loop = try getRunningLoop()
  let sleeper = try loop.createTask { () async throws -> String in
    try await Task.sleep(for: .milliseconds(3000))
    return "slept"
  }
  let start = loop.time()
  try loop.callLater(0.01) { sleeper.cancel(message: "wake up") }
  do {
    return try await sleeper.value
  } catch let cancelled as CancelledError {
    return "cancelled \(cancelled.message) \(loop.time() - start < 1)"
  }
}

// 8. timeout interrupts a Swift await.
runCase("timeout reaches Task.sleep", "timed out true") {
  let loop = try getRunningLoop()
  let start = loop.time()
  do {
    try await timeout(0.01) { _ in try await Task.sleep(for: .milliseconds(3000)) }
    return "no timeout"
  } catch is TimeoutError {
    return "timed out \(loop.time() - start < 1)"
  }
}

// 9. Cancelling a task awaiting an async let cancels the child too.
runCase("cancel reaches async let", "cancelled true") {
  let loop = try getRunningLoop()
  let start = loop.time()
  let parent = try loop.createTask { () async throws -> Int in
    async let slow = value(1, after: 3)
    return try await slow
  }
  try await sleep(0.01)
  parent.cancel()
  do {
    return "finished \(try await parent.value)"
  } catch is CancelledError {
    return "cancelled \(loop.time() - start < 1)"
  }
}

// 10. Socket operations on a socket pair: a reader waiting while a writer sends.
runCase("sock_recv and sock_sendall", "hello") {
  let loop = try getRunningLoop()
  var fds: [Int32] = [-1, -1]
  guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0 else {
    return "no socket pair"
  }
  defer {
    close(fds[0])
    close(fds[1])
  }
  let (reader, writer) = (fds[0], fds[1])
  let receiving = try loop.createTask { try await loop.sockRecv(reader, 100) }
  try await loop.sockSendAll(writer, Array("hello".utf8))
  return String(decoding: try await receiving.value, as: UTF8.self)
}

// 11. A write to a peer that is gone fails at once: the transport is closing
// and says with what error connection_lost is to come.
final class Quiet: StreamProtocol {
  func dataReceived(_ data: UnsafeRawBufferPointer) {}
}
runCase("a failed write closes at once", "closing EPIPE") {
  let loop = try getRunningLoop()
  var fds: [Int32] = [-1, -1]
  guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return "no socket pair" }
  let transport = try await loop.connectAcceptedSocket({ Quiet() }, fd: fds[0])
  close(fds[1])
  try Array("x".utf8).withUnsafeBytes { try transport.write($0) }
  let error = transport.closingError as? OSError
  transport.close()
  return "\(transport.isClosing ? "closing" : "open") \(error?.errno == EPIPE ? "EPIPE" : "\(String(describing: error))")"
}

print(failures == 0 ? "swift6 user program: all passed" : "swift6 user program: \(failures) failed")
exit(failures == 0 ? 0 : 1)
