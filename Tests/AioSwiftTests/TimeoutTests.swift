import AioSwift
import XCTest

final class TimeoutTests: LeakCheckedTestCase {
  func testTheDeadlineBecomesATimeoutError() throws {
    try runMain {
      var scope: Timeout?
      let start = try getRunningLoop().time()
      do {
        try await timeout(0.01) { cm in
          scope = cm
          try await sleep(10)
        }
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
      XCTAssertTrue(scope!.isExpired)
      XCTAssertLessThan(try getRunningLoop().time() - start, 5)
      XCTAssertEqual(currentTask()!.cancelling, 0, "the scope took back its own cancellation")
    }
  }

  func testAScopeThatDoesNotExpire() throws {
    try runMain {
      let value = try await timeout(10) { cm -> Int in
        try await sleep(0)
        XCTAssertFalse(cm.isExpired)
        return 7
      }
      XCTAssertEqual(value, 7)
      let never = try await timeout(nil) { cm -> Double? in cm.when }
      XCTAssertNil(never)
    }
  }

  func testRescheduleMovesTheDeadline() throws {
    try runMain {
      let loop = try getRunningLoop()
      do {
        try await timeout(nil) { cm in
          try cm.reschedule(loop.time() + 0.01)
          try await sleep(10)
        }
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
      let scope = Timeout(when: nil)
      XCTAssertThrowsError(try scope.reschedule(1)) { error in
        XCTAssertEqual((error as? RuntimeError)?.message, "Timeout has not been entered")
      }
    }
  }

  func testNestedScopesOnlyTheInnerExpires() throws {
    try runMain {
      var outerScope: Timeout?
      let result = try await timeout(10) { outer -> String in
        outerScope = outer
        do {
          try await timeout(0.01) { _ in try await sleep(10) }
          return "no timeout"
        } catch is TimeoutError {
          return "inner timed out"
        }
      }
      XCTAssertEqual(result, "inner timed out")
      XCTAssertFalse(outerScope!.isExpired)
    }
  }

  /// CPython's test_timeout_after_cancellation: a cancellation was caught
  /// (cancelling() stays 1); a later scope's own expiry is still a timeout.
  func testTimeoutAfterACaughtCancellation() throws {
    try runMain {
      currentTask()!.cancel()
      do { try await sleep(1) } catch is CancelledError {}
      do {
        try await timeout(0) { _ in try await sleep(1) }
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
    }
  }

  /// CPython's test_cancel_in_timeout_after_cancellation: a new cancel inside
  /// the scope is not the scope's: it stays a CancelledError.
  func testACancelInsideTheScopeStaysACancellation() throws {
    try runMain {
      currentTask()!.cancel()
      do { try await sleep(1) } catch is CancelledError {}
      do {
        try await timeout(1) { _ in
          currentTask()!.cancel()
          try await sleep(2)
        }
        XCTFail("expected CancelledError")
      } catch is CancelledError {}
    }
  }

  /// The scope expires, but a newer cancel request came too: uncancel()
  /// leaves one pending, so the scope does not claim the cancellation.
  func testANewerCancelWinsOverTheDeadline() throws {
    try runMain {
      var scope: Timeout?
      do {
        // A deadline already passed fires through call_soon, after the
        // cancel below has reached the task.
        try await timeout(0) { cm in
          scope = cm
          currentTask()!.cancel()
          try await sleep(10)
        }
        XCTFail("expected CancelledError")
      } catch is CancelledError {}
      XCTAssertTrue(scope!.isExpired)
      XCTAssertEqual(currentTask()!.cancelling, 1, "the newer request is still pending")
      currentTask()!.uncancel()
    }
  }

  func testEnteringTwiceIsAnError() throws {
    try runMain {
      let scope = Timeout(when: nil)
      try scope.enter(currentTask()!)
      XCTAssertThrowsError(try scope.enter(currentTask()!))
      XCTAssertNil(try scope.exit(nil))
      XCTAssertThrowsError(try scope.exit(nil))
    }
  }
}

final class WaitForTests: LeakCheckedTestCase {
  func testATimeoutCancelsTheTaskAndWaitsForIt() throws {
    try runMain {
      var cleanedUp = false
      let slow = try spawn { () async throws -> Int in
        do {
          try await sleep(10)
        } catch is CancelledError {
          try await sleep(0)  // cleanup that takes an iteration
          cleanedUp = true
          throw CancelledError()
        }
        return 1
      }
      do {
        _ = try await waitFor(slow, timeout: 0.01)
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
      XCTAssertTrue(slow.isCancelled, "wait_for waits for the task to finish cancelling")
      XCTAssertTrue(cleanedUp)
    }
  }

  func testAResultInTime() throws {
    try runMain {
      let quick = try spawn { () async throws -> Int in
        try await sleep(0.001)
        return 5
      }
      let value = try await waitFor(quick, timeout: 10)
      XCTAssertEqual(value, 5)
      let forever = try spawn { () async throws -> Int in 6 }
      let six = try await waitFor(forever, timeout: nil)
      XCTAssertEqual(six, 6)
    }
  }

  /// timeout <= 0 still takes a result that is already there.
  func testZeroTimeoutTakesAFinishedResult() throws {
    try runMain {
      let future = try getRunningLoop().createFuture(of: Int.self)
      try future.setResult(3)
      let value = try await waitFor(future, timeout: 0)
      XCTAssertEqual(value, 3)
      let pending = try getRunningLoop().createFuture(of: Int.self)
      do {
        _ = try await waitFor(pending, timeout: 0)
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
      XCTAssertTrue(pending.isCancelled)
    }
  }

  /// A result that races the deadline is not lost: wait_for returns it or
  /// raises TimeoutError, but the future keeps its result either way (it is
  /// never cancelled after finishing).
  func testAResultRacingTheDeadlineIsNotLost() throws {
    try runMain {
      let loop = try getRunningLoop()
      for _ in 0..<20 {
        let future = loop.createFuture(of: Int.self)
        let when = loop.time() + 0.002
        try loop.callAt(when) { try future.setResult(5) }
        do {
          let value = try await waitFor(future, timeout: when - loop.time())
          XCTAssertEqual(value, 5)
        } catch is TimeoutError {}
        try await sleep(0.003)
        XCTAssertEqual(try future.result(), 5)
      }
    }
  }

  /// The waiting task's own cancellation propagates as a cancellation.
  func testTheOuterCancellationPropagates() throws {
    try runMain {
      let loop = try getRunningLoop()
      let inner = try spawn { () async throws -> Int in
        try await sleep(10)
        return 1
      }
      let outer = try spawn { () async throws -> Int in try await waitFor(inner, timeout: 5) }
      try loop.callLater(0.01) { outer.cancel() }
      do {
        _ = try await outer.value
        XCTFail("expected CancelledError")
      } catch is CancelledError {}
      XCTAssertTrue(inner.isCancelled)
    }
  }
}
