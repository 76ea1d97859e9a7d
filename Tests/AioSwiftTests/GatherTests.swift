import AioSwift
import XCTest

/// A task that sleeps `delay` then returns `value` (or throws `error`).
func sleeper<T>(_ delay: Double, _ value: T, throwing error: (any Error)? = nil) throws -> AioTask<T> {
  try spawn { () async throws -> T in
    try await sleep(delay)
    if let error { throw error }
    return value
  }
}

final class GatherTests: LeakCheckedTestCase {
  func testResultsComeInArgumentOrder() throws {
    try runMain {
      let tasks = try [sleeper(0.02, "slow"), sleeper(0.0, "instant"), sleeper(0.01, "middle")]
      let results = try await gather(tasks)
      XCTAssertEqual(results, ["slow", "instant", "middle"])
    }
  }

  func testAnEmptyGatherIsDoneAtOnce() throws {
    try runMain {
      let outer = try getRunningLoop().gather([])
      XCTAssertTrue(outer.isDone)
      let none: [Int] = try await gather([AioTask<Int>]())
      XCTAssertEqual(none, [])
    }
  }

  /// The first error propagates; the other children go on (gather does not
  /// cancel them).
  func testTheFirstErrorPropagates() throws {
    try runMain {
      let failing = try sleeper(0.001, 0, throwing: Boom(tag: 4))
      let slow = try sleeper(0.5, 2)
      do {
        _ = try await gather([failing, slow])
        XCTFail("expected Boom")
      } catch let error as Boom {
        XCTAssertEqual(error.tag, 4)
      }
      XCTAssertFalse(slow.isDone)
      let awaited = try await slow.value
      XCTAssertEqual(awaited, 2)
    }
  }

  func testReturnExceptionsWaitsForAll() throws {
    try runMain {
      let loop = try getRunningLoop()
      let failing = try sleeper(0.001, 0, throwing: Boom(tag: 5))
      let fine = try sleeper(0.005, 6)
      let outer = try loop.gather([failing, fine], returnExceptions: true)
      try await outer.wait()
      XCTAssertTrue(fine.isDone)
      XCTAssertEqual(try fine.result(), 6)
      XCTAssertEqual(try failing.exception() as? Boom, Boom(tag: 5))
    }
  }

  func testCancellingTheGatherCancelsEveryChild() throws {
    try runMain {
      let loop = try getRunningLoop()
      let children = try [sleeper(10, 1), sleeper(10, 2)]
      let outer = try loop.gather(children, returnExceptions: true)
      try await sleep(0)
      XCTAssertTrue(outer.cancel(message: "stop"))
      do {
        try await outer.wait()
        XCTFail("expected CancelledError")
      } catch let error as CancelledError {
        XCTAssertEqual(error.message, "stop")
      }
      XCTAssertTrue(children.allSatisfy { $0.isCancelled })
      XCTAssertFalse(outer.cancel())
    }
  }

  /// As CPython's: the gather is not cancelled itself, it fails with the
  /// child's CancelledError, which awaiting it raises.
  func testACancelledChildFailsTheGatherWithItsCancelledError() throws {
    try runMain {
      let loop = try getRunningLoop()
      let victim = try sleeper(10, 1)
      let other = try sleeper(0.01, 2)
      let outer = try loop.gather([victim, other])
      try await sleep(0)
      victim.cancel(message: "child")
      do {
        try await outer.wait()
        XCTFail("expected CancelledError")
      } catch let error as CancelledError {
        XCTAssertEqual(error.message, "child")
      }
      XCTAssertFalse(outer.isCancelled)
      XCTAssertTrue(try outer.exception() is CancelledError)
      let awaited = try await other.value
      XCTAssertEqual(awaited, 2)
    }
  }

  func testAFutureListedTwiceCountsOnce() throws {
    try runMain {
      let task = try sleeper(0.001, 9)
      let outer = try getRunningLoop().gather([task, task])
      XCTAssertEqual(outer.children.count, 1)
      try await outer.wait()
    }
  }
}

final class ShieldTests: LeakCheckedTestCase {
  func testCancellingTheOuterLeavesTheInnerRunning() throws {
    try runMain {
      let loop = try getRunningLoop()
      let inner = try sleeper(0.01, "kept")
      let outer = try loop.shield(inner)
      XCTAssertTrue(outer.cancel())
      do {
        try await outer.wait()
        XCTFail("expected CancelledError")
      } catch is CancelledError {}
      XCTAssertFalse(inner.isCancelled)
      let awaited = try await inner.value
      XCTAssertEqual(awaited, "kept")
    }
  }

  func testAShieldedAwaitSurvivesTheAwaitersCancellation() throws {
    try runMain {
      let loop = try getRunningLoop()
      let inner = try sleeper(0.01, 3)
      let awaiter = try spawn { try await shield(inner) }
      try await sleep(0)
      awaiter.cancel()
      do { _ = try await awaiter.value; XCTFail("expected CancelledError") } catch is CancelledError {}
      let awaited = try await inner.value
      XCTAssertEqual(awaited, 3)
      _ = loop
    }
  }

  func testTheOuterFollowsTheInner() throws {
    try runMain {
      let loop = try getRunningLoop()
      let failing = try sleeper(0.001, 0, throwing: Boom(tag: 8))
      do { _ = try await shield(failing); XCTFail("expected Boom") } catch let error as Boom {
        XCTAssertEqual(error.tag, 8)
      }
      let cancelled = try sleeper(10, 0)
      let outer = try loop.shield(cancelled)
      cancelled.cancel()
      do { try await outer.wait(); XCTFail("expected CancelledError") } catch is CancelledError {}
      XCTAssertTrue(outer.isCancelled)
      let done = try sleeper(0, 1)
      _ = try await done.value
      XCTAssertTrue(try loop.shield(done) === done, "a done future is its own shield")
    }
  }
}
