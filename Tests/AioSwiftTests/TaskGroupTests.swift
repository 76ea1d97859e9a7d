import AioSwift
import XCTest

final class TaskGroupTests: LeakCheckedTestCase {
  func testTheScopeWaitsForEveryTask() throws {
    try runMain {
      var finished: [Int] = []
      try await taskGroup { group in
        for i in [3, 1, 2] {
          try group.createTask { () async throws -> Void in
            try await sleep(Double(i) * 0.1)
            finished.append(i)
          }
        }
      }
      XCTAssertEqual(finished, [1, 2, 3])
    }
  }

  /// The first failure cancels the siblings and the body; the errors come
  /// out together.
  func testAFailureCancelsTheRest() throws {
    try runMain {
      var siblingCancelled = false
      var bodyCancelled = false
      do {
        try await taskGroup { group in
          try group.createTask { () async throws -> Void in
            do { try await sleep(10) } catch is CancelledError { siblingCancelled = true; throw CancelledError() }
          }
          try group.createTask { () async throws -> Void in
            try await sleep(0.001)
            throw Boom(tag: 1)
          }
          do { try await sleep(10) } catch is CancelledError { bodyCancelled = true; throw CancelledError() }
        }
        XCTFail("expected TaskGroupError")
      } catch let error as TaskGroupError {
        XCTAssertEqual(error.errors.count, 1)
        XCTAssertEqual(error.errors[0] as? Boom, Boom(tag: 1))
      }
      XCTAssertTrue(siblingCancelled)
      XCTAssertTrue(bodyCancelled)
      XCTAssertEqual(currentTask()!.cancelling, 0, "the group took back its cancel request")
    }
  }

  /// Every failure is collected, including one raised while being cancelled
  /// and the body's own.
  func testAllErrorsAreCollected() throws {
    try runMain {
      do {
        try await taskGroup { group in
          try group.createTask { () async throws -> Void in
            do { try await sleep(10) } catch is CancelledError { throw Boom(tag: 2) }
          }
          try group.createTask { () async throws -> Void in
            try await sleep(0.001)
            throw Boom(tag: 1)
          }
          try await sleep(10)
        }
        XCTFail("expected TaskGroupError")
      } catch let error as TaskGroupError {
        let tags = error.errors.compactMap { ($0 as? Boom)?.tag }.sorted()
        XCTAssertEqual(tags, [1, 2])
      }
    }
  }

  func testTheBodysErrorCancelsTheTasksAndJoinsTheGroupError() throws {
    try runMain {
      var cancelled = false
      do {
        try await taskGroup { group in
          try group.createTask { () async throws -> Void in
            do { try await sleep(10) } catch is CancelledError { cancelled = true; throw CancelledError() }
          }
          try await sleep(0)
          throw Boom(tag: 7)
        }
        XCTFail("expected TaskGroupError")
      } catch let error as TaskGroupError {
        XCTAssertEqual(error.errors.count, 1)
        XCTAssertEqual(error.errors[0] as? Boom, Boom(tag: 7))
      }
      XCTAssertTrue(cancelled)
    }
  }

  /// An outer cancel reaches the tasks and propagates as a cancellation.
  func testAnOuterCancellationPropagates() throws {
    try runMain {
      var childCancelled = false
      let parent = try spawn { () async throws -> Void in
        try await taskGroup { group in
          try group.createTask { () async throws -> Void in
            do { try await sleep(10) } catch is CancelledError { childCancelled = true; throw CancelledError() }
          }
          try await sleep(10)
        }
      }
      try await sleep(0.001)
      parent.cancel()
      do { try await parent.value; XCTFail("expected CancelledError") } catch is CancelledError {}
      XCTAssertTrue(childCancelled)
      XCTAssertEqual(parent.cancelling, 1)
    }
  }

  func testCreatingATaskInAFinishedGroupIsAnError() throws {
    try runMain {
      var kept: AioTaskGroup?
      try await taskGroup { group in kept = group }
      XCTAssertThrowsError(try kept!.createTask { 1 }) { error in
        XCTAssertEqual(errorName((error as! RuntimeError).code), "AIOS_EINVALIDSTATE")
      }
      let unentered = AioTaskGroup(loop: try getRunningLoop())
      XCTAssertThrowsError(try unentered.createTask { 1 })
    }
  }

  func testNestedGroups() throws {
    try runMain {
      var innerError: TaskGroupError?
      var outerSibling = false
      try await taskGroup { outer in
        try outer.createTask { () async throws -> Void in
          try await sleep(0.005)
          outerSibling = true
        }
        do {
          try await taskGroup { inner in
            try inner.createTask { () async throws -> Void in throw Boom(tag: 3) }
            try await sleep(10)
          }
        } catch let error as TaskGroupError {
          innerError = error
        }
      }
      XCTAssertEqual(innerError?.errors.count, 1)
      XCTAssertTrue(outerSibling, "the outer group was not disturbed")
    }
  }
}
