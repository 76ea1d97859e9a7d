import AioSwift
import XCTest

final class AsCompletedTests: LeakCheckedTestCase {
  func testFuturesComeInTheOrderTheyFinish() throws {
    try runMain {
      let slow = try sleeper(0.3, "slow"), fast = try sleeper(0.0, "fast"), middle = try sleeper(0.15, "middle")
      var order: [String] = []
      for try await task in try asCompleted([slow, fast, middle]) {
        order.append(try task.result())  // tasks in, tasks out: no cast
      }
      XCTAssertEqual(order, ["fast", "middle", "slow"])
    }
  }

  /// After the timeout each remaining next() raises TimeoutError; nothing
  /// is cancelled.
  func testATimeout() throws {
    try runMain {
      let fast = try sleeper(0, 1), slow = try sleeper(10, 2)
      let iterator = try asCompleted([slow, fast], timeout: 0.5)
      let first = try await iterator.next()
      XCTAssertTrue(first === fast)
      do { _ = try await iterator.next(); XCTFail("expected TimeoutError") } catch is TimeoutError {}
      let none = try await iterator.next()
      XCTAssertNil(none, "every future was handed out")
      XCTAssertFalse(slow.isCancelled)
      slow.cancel()
      _ = try? await slow.value
    }
  }

  func testAnEmptySetEndsAtOnce() throws {
    try runMain {
      let none = try await asCompleted([]).next()
      XCTAssertNil(none)
    }
  }
}
