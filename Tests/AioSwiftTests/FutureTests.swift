import AioSwift
import XCTest

struct Boom: Error, Equatable {
  var tag = 0
}

final class FutureTests: LeakCheckedTestCase {
  func testResultBeforeDoneIsInvalidState() throws {
    try withLoop { loop in
      let future = loop.createFuture(of: Int.self)
      XCTAssertThrowsError(try future.result()) { XCTAssertTrue($0 is InvalidStateError) }
      try future.setResult(3)
      XCTAssertEqual(try future.result(), 3)
      XCTAssertThrowsError(try future.setResult(4)) { XCTAssertTrue($0 is InvalidStateError) }
      XCTAssertFalse(future.cancel())
    }
  }

  func testDoneCallbacksAreScheduledNeverInlineAndInOrder() throws {
    try withLoop { loop in
      var events: [String] = []
      let future = loop.createFuture(of: String.self)
      future.addDoneCallback { _ in events.append("first") }
      future.addDoneCallback { _ in events.append("second") }
      try future.setResult("x")
      XCTAssertEqual(events, [], "callbacks must not run inside set_result")
      try loop.callSoon {
        // Added to a done future: scheduled too, after the ones already queued.
        future.addDoneCallback { _ in events.append("late"); try? loop.stop() }
        XCTAssertEqual(events, ["first", "second"])
      }
      try loop.runForever()
      XCTAssertEqual(events, ["first", "second", "late"])
    }
  }

  func testRemoveDoneCallback() throws {
    try withLoop { loop in
      var events: [Int] = []
      let future = loop.createFuture(of: Int.self)
      let one = future.addDoneCallback { _ in events.append(1) }
      future.addDoneCallback { _ in events.append(2) }
      XCTAssertEqual(future.removeDoneCallback(one), 1)
      XCTAssertEqual(future.removeDoneCallback(one), 0)
      try future.setResult(0)
      try loop.runUntilComplete(future)
      try loop.stop()
      try loop.runForever()
      XCTAssertEqual(events, [2])
    }
  }

  func testCancelCarriesItsMessage() throws {
    try withLoop { loop in
      let future = loop.createFuture(of: Int.self)
      XCTAssertTrue(future.cancel(message: "stop it"))
      XCTAssertFalse(future.cancel(message: "again"))
      XCTAssertTrue(future.isCancelled && future.isDone)
      XCTAssertThrowsError(try future.result()) { error in
        XCTAssertEqual((error as? CancelledError)?.message, "stop it")
      }
    }
  }

  func testSetErrorRefusesCancelledError() throws {
    try withLoop { loop in
      let future = loop.createFuture(of: Int.self)
      XCTAssertThrowsError(try future.setError(CancelledError()))
      try future.setError(Boom(tag: 7))
      XCTAssertThrowsError(try future.result()) { XCTAssertEqual($0 as? Boom, Boom(tag: 7)) }
    }
  }

  func testErrorNeverRetrievedIsReportedWhenTheFutureIsFreed() throws {
    try withLoop { loop in
      var reports: [String] = []
      loop.exceptionHandler = { _, context in
        reports.append(context.message)
        XCTAssertEqual(context.error as? Boom, Boom(tag: 1))
      }
      do {
        let future = loop.createFuture(of: Int.self)
        try future.setError(Boom(tag: 1))
      }
      do {
        let retrieved = loop.createFuture(of: Int.self)
        try retrieved.setError(Boom(tag: 2))
        _ = try retrieved.exception()
      }
      XCTAssertEqual(reports, ["Future exception was never retrieved"])
    }
  }
}
