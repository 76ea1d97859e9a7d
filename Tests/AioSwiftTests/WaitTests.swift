import AioSwift
import XCTest

final class WaitTests: LeakCheckedTestCase {
  func testAllCompleted() throws {
    try runMain {
      let a = try sleeper(0.01, 1), b = try sleeper(0.0, 2)
      let (done, pending) = try await AioSwift.wait([a, b])
      XCTAssertEqual(done.count, 2)
      XCTAssertTrue(pending.isEmpty)
    }
  }

  func testFirstCompletedLeavesTheRestPending() throws {
    try runMain {
      let fast = try sleeper(0.001, 1), slow = try sleeper(10, 2)
      let (done, pending) = try await AioSwift.wait([slow, fast], returnWhen: .firstCompleted)
      XCTAssertTrue(done.count == 1 && done[0] === fast)
      XCTAssertTrue(pending.count == 1 && pending[0] === slow)
      slow.cancel()
      _ = try? await slow.value
    }
  }

  func testFirstExceptionReturnsAtTheFailure() throws {
    try runMain {
      let failing = try sleeper(0.001, 0, throwing: Boom(tag: 1))
      let fine = try sleeper(0.0, 1), slow = try sleeper(10, 2)
      let (done, pending) = try await AioSwift.wait([fine, failing, slow], returnWhen: .firstException)
      XCTAssertEqual(done.count, 2)
      XCTAssertTrue(pending.count == 1 && pending[0] === slow)
      XCTAssertEqual(try failing.exception() as? Boom, Boom(tag: 1))
      slow.cancel()
      _ = try? await slow.value
    }
  }

  /// A timeout returns what is done; it cancels nothing.
  func testATimeoutCancelsNothing() throws {
    try runMain {
      let slow = try sleeper(10, 1)
      let (done, pending) = try await AioSwift.wait([slow], timeout: 0.01)
      XCTAssertTrue(done.isEmpty)
      XCTAssertTrue(pending.count == 1 && !slow.isCancelled)
      slow.cancel()
      _ = try? await slow.value
    }
  }

  func testAnEmptySetIsAnError() throws {
    try runMain {
      do {
        _ = try await AioSwift.wait([])
        XCTFail("expected an error")
      } catch let error as RuntimeError {
        XCTAssertEqual(errorName(error.code), "AIOS_EINVAL")
      }
    }
  }

  /// Cancelling the waiting task cancels the wait, not the futures.
  func testCancellingTheWaiterLeavesTheFutures() throws {
    try runMain {
      let slow = try sleeper(10, 1)
      let waiter = try spawn { try await AioSwift.wait([slow]) }
      try await sleep(0)
      waiter.cancel()
      do { _ = try await waiter.value; XCTFail("expected CancelledError") } catch is CancelledError {}
      XCTAssertFalse(slow.isDone)
      slow.cancel()
      _ = try? await slow.value
    }
  }
}
