// The Swift surface made for Swift callers: typed combinators, Duration
// spellings, errors caught by type, the named queue and semaphore kinds.
import AioSwift
import XCTest

final class SwiftAPITests: LeakCheckedTestCase {
  func testGatherOfDifferentTypesGivesATuple() throws {
    let (n, s, b) = try runMain { () async throws -> (Int, String, Bool) in
      let n = try createTask { () async throws -> Int in try await sleep(for: .milliseconds(2)); return 1 }
      let s = try createTask { () async throws -> String in "two" }
      let b = try createTask { () async throws -> Bool in try await sleep(0); return true }
      return try await gather(n, s, b)
    }
    XCTAssertEqual(n, 1)
    XCTAssertEqual(s, "two")
    XCTAssertTrue(b)
  }

  func testGatherReturningExceptions() throws {
    let outcomes = try runMain { () async throws -> [String] in
      let ok = try createTask { () async throws -> Int in 1 }
      let failing = try createTask { () async throws -> Int in throw TimeoutError("late") }
      return try await gather([ok, failing], returnExceptions: true).map {
        switch $0 {
        case .success(let value): return "\(value)"
        case .failure(let error): return "\(type(of: error))"
        }
      }
    }
    XCTAssertEqual(outcomes, ["1", "TimeoutError"])
  }

  func testAsCompletedAndWaitYieldTasks() throws {
    let (order, done, pending) = try runMain { () async throws -> ([Int], Int, Int) in
      let slow = try createTask { () async throws -> Int in try await sleep(0.3); return 2 }
      let fast = try createTask { () async throws -> Int in try await sleep(0.001); return 1 }
      var order: [Int] = []
      for try await task in try asCompleted([slow, fast]) { order.append(try task.result()) }
      let late = try createTask { () async throws -> Int in try await sleep(10); return 3 }
      let (done, pending) = try await AioSwift.wait([slow, late], timeout: 0.001)
      late.cancel()
      _ = try? await late.value
      return (order, try done.first!.result(), pending.count)
    }
    XCTAssertEqual(order, [1, 2])
    XCTAssertEqual(done, 2)
    XCTAssertEqual(pending, 1)
  }

  func testDurationsAndTimeoutWithoutItsScope() throws {
    let outcome = try runMain { () async throws -> String in
      let loop = try getRunningLoop()
      var fired = false
      try loop.callLater(.milliseconds(1)) { fired = true }
      try await sleep(for: .milliseconds(5))
      do {
        try await timeout(.milliseconds(1)) { try await sleep(1) }
        return "no timeout"
      } catch is TimeoutError {
        let task = try createTask { () async throws -> Int in try await sleep(5); return 0 }
        do {
          _ = try await waitFor(task, timeout: .milliseconds(1))
          return "no timeout"
        } catch is TimeoutError {
          return fired ? "fired, timed out twice" : "not fired"
        }
      }
    }
    XCTAssertEqual(outcome, "fired, timed out twice")
  }

  func testErrorsCaughtByType() throws {
    try runMain {
      let queue = Queue<Int>(maxsize: 1)
      do { _ = try queue.getNowait(); XCTFail("expected QueueEmpty") } catch is QueueEmpty {}
      try queue.putNowait(1)
      do { try queue.putNowait(2); XCTFail("expected QueueFull") } catch is QueueFull {}
      try queue.shutdown()
      do { try await queue.put(3); XCTFail("expected QueueShutDown") } catch is QueueShutDown {}
      let barrier = try Barrier(parties: 2)
      let waiter = try createTask { try await barrier.wait() }
      try await sleep(0)
      try await barrier.abort()
      do { _ = try await waiter.value; XCTFail("expected BrokenBarrierError") } catch is BrokenBarrierError {}
    }
  }

  func testNamedQueueAndSemaphoreKinds() throws {
    try runMain {
      let lifo = LifoQueue<Int>()
      for n in 1...3 { try lifo.putNowait(n) }
      XCTAssertEqual(try (0..<3).map { _ in try lifo.getNowait() }, [3, 2, 1])
      let priority = PriorityQueue<Int>()
      for n in [5, 1, 3] { try priority.putNowait(n) }
      XCTAssertEqual(try (0..<3).map { _ in try priority.getNowait() }, [1, 3, 5])
      XCTAssertTrue(priority.isEmpty)
      XCTAssertEqual(priority.count, 0)
      let bounded = try BoundedSemaphore(value: 1)
      XCTAssertThrowsError(try bounded.release())
      let plain = try Semaphore(value: 1)
      try plain.release()
      XCTAssertFalse(plain.isLocked)
    }
  }

  /// A release error is thrown, not swallowed (asyncio's __aexit__ raises it).
  func testWithLockThrowsAReleaseError() throws {
    try runMain {
      let lock = Lock()
      do {
        try await lock.withLock { try lock.release() }
        XCTFail("expected the release error")
      } catch let error as RuntimeError {
        XCTAssertEqual(errorName(error.code), "AIOS_ENOTACQUIRED")
      }
      XCTAssertFalse(lock.isLocked)
    }
  }

  func testRunnerLoopIsAProperty() throws {
    let runner = Runner()
    let loop = try runner.loop
    XCTAssertTrue(try runner.loop === loop)
    try runner.close()
    XCTAssertThrowsError(try runner.loop)
  }
}
