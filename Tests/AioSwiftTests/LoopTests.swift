import AioSwift
import Glibc
import XCTest

final class LoopTests: LeakCheckedTestCase {
  func testCallSoonRunsInOrderOnLaterIterations() throws {
    try withLoop { loop in
      var events: [String] = []
      try loop.callSoon {
        events.append("a")
        // Scheduled by a callback: runs on the next iteration, after "b".
        try loop.callSoon { events.append("c"); try loop.stop() }
      }
      try loop.callSoon { events.append("b") }
      XCTAssertEqual(events, [])
      try loop.runForever()
      XCTAssertEqual(events, ["a", "b", "c"])
    }
  }

  func testStopBeforeRunForeverRunsExactlyOneIteration() throws {
    try withLoop { loop in
      var events: [Int] = []
      try loop.callSoon {
        events.append(1)
        try loop.callSoon { events.append(2) }
      }
      try loop.stop()
      try loop.runForever()
      XCTAssertEqual(events, [1])
      try loop.stop()
      try loop.runForever()
      XCTAssertEqual(events, [1, 2])
    }
  }

  func testTimersRunByDeadlineThenBySchedulingOrder() throws {
    try withLoop { loop in
      var events: [String] = []
      let now = loop.time()
      try loop.callAt(now + 0.03) { events.append("late"); try loop.stop() }
      try loop.callAt(now + 0.01) { events.append("early-1") }
      try loop.callAt(now + 0.01) { events.append("early-2") }
      try loop.callAt(now + 0.02) { events.append("middle") }
      try loop.callSoon { events.append("soon") }
      try loop.runForever()
      XCTAssertEqual(events, ["soon", "early-1", "early-2", "middle", "late"])
      XCTAssertGreaterThanOrEqual(loop.time(), now + 0.03)
    }
  }

  func testOverdueTimersFire() throws {
    // Due before the loop polls: libuv would run its wake-up timer before
    // the poll, which must then not block.
    try withLoop { loop in
      var fired: [String] = []
      try loop.callLater(0) { fired.append("zero"); try loop.stop() }
      try loop.callAt(loop.time() - 1) { fired.append("past") }
      try loop.runForever()
      XCTAssertEqual(fired, ["past", "zero"], "by deadline, as asyncio orders them")
    }
  }

  func testATimerThatFallsDueDuringASlowCallbackFires() throws {
    try withLoop { loop in
      var fired = false
      try loop.callLater(0.005) { fired = true; try loop.stop() }
      try loop.callSoon { usleep(20_000) }
      try loop.runForever()
      XCTAssertTrue(fired)
    }
  }

  func testCancelledHandlesDoNotRun() throws {
    try withLoop { loop in
      var events: [String] = []
      let soon = try loop.callSoon { events.append("soon") }
      let timer = try loop.callLater(0.001) { events.append("timer") }
      XCTAssertEqual(timer.when, timer.when)
      soon.cancel()
      timer.cancel()
      timer.cancel()
      XCTAssertTrue(soon.cancelled && timer.cancelled)
      try loop.callLater(0.01) { try loop.stop() }
      try loop.runForever()
      XCTAssertEqual(events, [])
    }
  }

  func testManyCancelledTimersAreDropped() throws {
    try withLoop { loop in
      var ran = 0
      let handles = try (0..<1000).map { i in try loop.callLater(Double(i) * 0.0001) { ran += 1 } }
      for handle in handles.dropLast() { handle.cancel() }
      try loop.callLater(0.2) { try loop.stop() }
      try loop.runForever()
      XCTAssertEqual(ran, 1)
    }
  }

  func testTimeIsMonotonic() throws {
    try withLoop { loop in
      let a = loop.time()
      let b = loop.time()
      XCTAssertLessThanOrEqual(a, b)
    }
  }

  func testCallSoonThreadsafeWakesABlockedLoop() throws {
    try withLoop { loop in
      var woken = false
      var thread = pthread_t()
      final class Context { let loop: Loop; var woken: () -> Void
        init(_ loop: Loop, _ woken: @escaping () -> Void) { self.loop = loop; self.woken = woken } }
      let context = Unmanaged.passRetained(Context(loop) { woken = true })
      pthread_create(&thread, nil, { raw in
        let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
        usleep(20_000)  // the loop is blocked in its poll by now
        try! context.loop.callSoonThreadsafe { context.woken(); try context.loop.stop() }
        return nil
      }, context.toOpaque())
      try loop.runForever()
      pthread_join(thread, nil)
      XCTAssertTrue(woken)
    }
  }

  func testWrongThreadIsAnError() throws {
    try withLoop { loop in
      var thread = pthread_t()
      let box = Unmanaged.passRetained(loop)
      var code: Int32 = 0
      withUnsafeMutablePointer(to: &code) { codePointer in
        final class Args { let loop: Loop; let out: UnsafeMutablePointer<Int32>
          init(_ loop: Loop, _ out: UnsafeMutablePointer<Int32>) { self.loop = loop; self.out = out } }
        let args = Unmanaged.passRetained(Args(loop, codePointer))
        pthread_create(&thread, nil, { raw in
          let args = Unmanaged<Args>.fromOpaque(raw!).takeRetainedValue()
          do { try args.loop.callSoon {} } catch let error as RuntimeError { args.out.pointee = error.code }
          catch {}
          return nil
        }, args.toOpaque())
        pthread_join(thread, nil)
      }
      box.release()
      XCTAssertEqual(code, RuntimeError(code: -3004).code)
      XCTAssertEqual(errorName(code), "AIOS_EWRONGTHREAD")
    }
  }

  func testClosedLoopRefusesWorkAndClosesOnce() throws {
    let loop = try Loop()
    try loop.close()
    try loop.close()
    XCTAssertTrue(loop.isClosed)
    XCTAssertThrowsError(try loop.callSoon {}) { error in
      XCTAssertEqual(errorName((error as! RuntimeError).code), "AIOS_ECLOSED")
    }
    XCTAssertThrowsError(try loop.runForever())
  }

  func testNestedRunAndCloseWhileRunningAreErrors() throws {
    try withLoop { loop in
      var nested: String?
      var close: String?
      try loop.callSoon {
        do { try loop.runForever() } catch let e as RuntimeError { nested = errorName(e.code) }
        do { try loop.close() } catch let e as RuntimeError { close = errorName(e.code) }
        XCTAssertTrue(loop.isRunning)
        try loop.stop()
      }
      try loop.runForever()
      XCTAssertEqual(nested, "AIOS_ERUNNING")
      XCTAssertEqual(close, "AIOS_ERUNNING")
      XCTAssertFalse(loop.isRunning)
    }
  }

  func testGetRunningLoop() throws {
    XCTAssertThrowsError(try getRunningLoop())
    try withLoop { loop in
      var seen: Loop?
      try loop.callSoon { seen = try getRunningLoop(); try loop.stop() }
      try loop.runForever()
      XCTAssertTrue(seen === loop)
    }
  }

  func testCallbackErrorsReachTheExceptionHandlerAndTheLoopGoesOn() throws {
    struct Boom: Error {}
    try withLoop { loop in
      var reported: [String] = []
      loop.exceptionHandler = { _, context in
        reported.append(context.message)
        XCTAssertTrue(context.error is Boom)
      }
      try loop.callSoon { throw Boom() }
      try loop.callSoon { try loop.stop() }
      try loop.runForever()
      XCTAssertEqual(reported.count, 1)
      XCTAssertTrue(reported[0].hasPrefix("Exception in callback"))
    }
  }

  func testDebugModeReportsSlowCallbacks() throws {
    try withLoop { loop in
      var reports: [String] = []
      loop.exceptionHandler = { _, context in reports.append(context.message) }
      loop.debug = true
      loop.slowCallbackDuration = 0.05
      try loop.callSoon { usleep(150_000) }
      try loop.callSoon { try loop.stop() }
      try loop.runForever()
      XCTAssertEqual(reports.count, 1)
      XCTAssertTrue(reports[0].hasPrefix("Executing <Handle"), reports[0])
      XCTAssertTrue(reports[0].hasSuffix("seconds"), reports[0])
    }
  }
}
