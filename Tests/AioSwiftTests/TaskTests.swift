import AioSwift
import XCTest

final class TaskTests: LeakCheckedTestCase {
  func testTaskReturnsItsValue() throws {
    try withLoop { loop in
      let task = try loop.createTask { () async throws -> Int in
        try await sleep(0.01)
        return 42
      }
      XCTAssertEqual(try loop.runUntilComplete(task), 42)
      XCTAssertTrue(task.isDone)
    }
  }

  func testSleepZeroYieldsExactlyOneIteration() throws {
    // asyncio: a1 b1 c1 | a2 b2 c2 — each sleep(0) resumes on the next
    // iteration, in step with a chain of call_soon callbacks.
    try withLoop { loop in
      var events: [String] = []
      for name in ["a", "b"] {
        try loop.createTask { () async throws -> Void in
          events.append("\(name)1")
          try await sleep(0)
          events.append("\(name)2")
          try await sleep(0)
          events.append("\(name)3")
        }
      }
      try loop.callSoon {
        events.append("c1")
        try loop.callSoon {
          events.append("c2")
          try loop.callSoon { events.append("c3"); try loop.stop() }
        }
      }
      try loop.runForever()
      XCTAssertEqual(events, ["a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"])
    }
  }

  func testAwaitingADoneFutureDoesNotYield() throws {
    try withLoop { loop in
      var events: [String] = []
      let done = loop.createFuture(of: Int.self)
      try done.setResult(5)
      try loop.createTask { () async throws -> Void in
        events.append("t1")
        events.append("t\(try await done.value)")
      }
      try loop.callSoon { events.append("cb"); try loop.stop() }
      try loop.runForever()
      XCTAssertEqual(events, ["t1", "t5", "cb"])
    }
  }

  func testCancelIsDeliveredAtTheCurrentAwaitWithItsMessage() throws {
    try withLoop { loop in
      var caught: String?
      let task = try loop.createTask { () async throws -> Void in
        do {
          try await sleep(10)
        } catch let error as CancelledError {
          caught = error.message
          throw error
        }
      }
      try loop.callLater(0.01) { XCTAssertTrue(task.cancel(message: "enough")) }
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { error in
        XCTAssertEqual((error as? CancelledError)?.message, "enough")
      }
      XCTAssertEqual(caught, "enough")
      XCTAssertTrue(task.isCancelled)
      XCTAssertFalse(task.cancel())
    }
  }

  func testATaskMayCatchCancellationAndGoOn() throws {
    try withLoop { loop in
      let task = try loop.createTask { () async throws -> String in
        do {
          try await sleep(10)
        } catch is CancelledError {
          let me = currentTask()!
          XCTAssertEqual(me.cancelling, 1)
          XCTAssertEqual(me.uncancel(), 0)
        }
        try await sleep(0)
        return "survived"
      }
      try loop.callSoon { task.cancel() }
      XCTAssertEqual(try loop.runUntilComplete(task), "survived")
      XCTAssertFalse(task.isCancelled)
    }
  }

  func testCancelBeforeTheFirstStepMeansTheBodyNeverRuns() throws {
    try withLoop { loop in
      var ran = false
      let task = try loop.createTask { () async throws -> Void in ran = true }
      XCTAssertTrue(task.cancel())
      XCTAssertEqual(task.cancelling, 1)
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { XCTAssertTrue($0 is CancelledError) }
      XCTAssertFalse(ran)
    }
  }

  func testCancelAfterTheAwaitedFutureFinishedStillCancels() throws {
    // The awaited future is done but the task has not stepped yet: cancel()
    // cannot cancel the future, so the next step throws CancelledError.
    try withLoop { loop in
      let future = loop.createFuture(of: Int.self)
      var outcome = ""
      let task = try loop.createTask { () async throws -> Void in
        do {
          _ = try await future.value
          outcome = "value"
        } catch is CancelledError {
          outcome = "cancelled"
        }
      }
      try loop.callSoon {
        try future.setResult(1)
        task.cancel()
      }
      try loop.runUntilComplete(task)
      XCTAssertEqual(outcome, "cancelled")
      XCTAssertEqual(try future.result(), 1)
    }
  }

  func testSelfCancelThenAwaitCancelsTheAwaitedFuture() throws {
    try withLoop { loop in
      let task = try loop.createTask { () async throws -> Void in
        currentTask()!.cancel(message: "self")
        try await sleep(10)
      }
      let start = loop.time()
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { error in
        XCTAssertEqual((error as? CancelledError)?.message, "self")
      }
      XCTAssertLessThan(loop.time() - start, 5)
    }
  }

  func testCancelWhileTheBodyRunsEndsTheTaskCancelledEvenIfItReturns() throws {
    try withLoop { loop in
      let task = try loop.createTask { () async throws -> Int in
        currentTask()!.cancel()
        return 1
      }
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { XCTAssertTrue($0 is CancelledError) }
    }
  }

  func testEagerTaskRunsToItsFirstAwaitInsideCreateTask() throws {
    try withLoop { loop in
      var events: [String] = []
      let main = try loop.createTask { () async throws -> Void in
        let eager = try loop.createTask(eager: true) { () async throws -> Int in
          events.append("eager-start")
          try await sleep(0)
          events.append("eager-end")
          return 7
        }
        events.append("created")
        let value = try await eager.value
        XCTAssertEqual(value, 7)
        let quick = try loop.createTask(eager: true) { () async throws -> Int in 8 }
        XCTAssertTrue(quick.isDone, "an eager task that never awaits is done on return")
        XCTAssertEqual(try quick.result(), 8)
      }
      try loop.runUntilComplete(main)
      XCTAssertEqual(events, ["eager-start", "created", "eager-end"])
    }
  }

  func testTasksAwaitEachOtherAndErrorsPropagate() throws {
    try withLoop { loop in
      let failing = try loop.createTask { () async throws -> Int in
        try await sleep(0.001)
        throw Boom(tag: 3)
      }
      let main = try loop.createTask { () async throws -> Int in
        do {
          return try await failing.value
        } catch let error as Boom {
          return error.tag
        }
      }
      XCTAssertEqual(try loop.runUntilComplete(main), 3)
    }
  }

  func testTaskErrorNeverRetrievedIsReported() throws {
    try withLoop { loop in
      var reports: [String] = []
      loop.exceptionHandler = { _, context in reports.append(context.message) }
      do {
        let task = try loop.createTask { () async throws -> Void in throw Boom() }
        try loop.callSoon { try loop.callSoon { try loop.stop() } }
        try loop.runForever()
        XCTAssertTrue(task.isDone)
      }
      XCTAssertEqual(reports, ["Task exception was never retrieved"])
    }
  }

  func testNamesCurrentTaskAndAllTasks() throws {
    try withLoop { loop in
      let sleeper = try loop.createTask(name: "sleeper") { () async throws -> Void in try await sleep(10) }
      XCTAssertEqual(sleeper.name, "sleeper")
      let main = try loop.createTask { () async throws -> Int in
        let me = currentTask()
        XCTAssertNotNil(me)
        XCTAssertTrue(loop.allTasks().contains { $0 === me })
        XCTAssertTrue(loop.allTasks().contains { $0 === sleeper })
        return loop.allTasks().count
      }
      XCTAssertTrue(main.name.hasPrefix("Task-"))
      main.name = "main"
      XCTAssertEqual(main.name, "main")
      XCTAssertEqual(try loop.runUntilComplete(main), 2)
      XCTAssertNil(currentTask())
      sleeper.cancel()
      XCTAssertThrowsError(try loop.runUntilComplete(sleeper))
      XCTAssertEqual(loop.allTasks().count, 0)
    }
  }

  /// After an await that is not the library's (Task.sleep), the body is
  /// resumed by the loop's executor, outside its task's steps: its next
  /// awaits are still its task's, so current_task and cancellation work.
  func testABodyResumedOutsideItsStepsIsStillItsTask() throws {
    try withLoop { loop in
      var seen: [String] = []
      let task = try loop.createTask { () async throws -> Void in
        let me = currentTask()
        try await Task.sleep(for: .milliseconds(1))
        seen.append(currentTask() === me ? "same task" : "another task")
        try await sleep(0)
        seen.append("yielded")
        try await Task.sleep(for: .milliseconds(1))
        do {
          try await sleep(10)
          seen.append("slept")
        } catch is CancelledError {
          seen.append("cancelled")
          throw CancelledError()
        }
      }
      try loop.callLater(0.5) { task.cancel() }
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { XCTAssertTrue($0 is CancelledError) }
      XCTAssertEqual(seen, ["same task", "yielded", "cancelled"])
      XCTAssertTrue(task.isCancelled)
    }
  }

  /// A task created by a body sees the body's task-locals, as `Task {}`
  /// does and as asyncio's create_task copies the context; its own
  /// bindings do not reach back.
  func testATaskInheritsTheTaskLocalsOfItsCreator() throws {
    try withLoop { loop in
      let outer = try loop.createTask { () async throws -> [String] in
        try await TaskTests.$request.withValue("outer") { () async throws -> [String] in
          let inner = try loop.createTask { () async throws -> [String] in
            let seen = TaskTests.request
            let rebound = TaskTests.$request.withValue("inner") { TaskTests.request }
            return [seen, rebound]
          }
          try await sleep(0)
          return try await inner.value + [TaskTests.request]
        }
      }
      XCTAssertEqual(try loop.runUntilComplete(outer), ["outer", "inner", "outer"])
    }
  }
  @TaskLocal static var request = "none"

  /// A Swift task made off the loop's thread but preferring its executor
  /// waits on the loop's futures on its own.
  func testATaskPreferringTheLoopFromAnotherThreadAwaitsItsFutures() throws {
    struct Shared: @unchecked Sendable { let loop: Loop; let future: Future<Int>; let result: Future<Int> }
    try withLoop { loop in
      let shared = Shared(loop: loop, future: loop.createFuture(of: Int.self), result: loop.createFuture(of: Int.self))
      let main = try loop.createTask { () async throws -> Int in
        // Made on a worker thread, with no task of the loop around it.
        try await toThread {
          Task(executorPreference: shared.loop) {
            let value = (try? await shared.future.value) ?? -1
            try? shared.result.setResult(value * 2)
          }
        }
        try shared.loop.callLater(0.01) { try shared.future.setResult(21) }
        return try await shared.result.value
      }
      XCTAssertEqual(try loop.runUntilComplete(main), 42)
    }
  }

  func testAFutureOfAnotherLoopCannotBeAwaited() throws {
    try withLoop { loop in
      let other = try Loop()
      defer { try? other.close() }
      let foreign = other.createFuture(of: Int.self)
      let task = try loop.createTask { () async throws -> Int in try await foreign.value }
      XCTAssertThrowsError(try loop.runUntilComplete(task)) { error in
        XCTAssertEqual(errorName((error as? RuntimeError)?.code ?? 0), "AIOS_EWRONGLOOP")
      }
    }
  }
}

final class RunnerTests: LeakCheckedTestCase {
  func testRunReturnsTheResultAndCancelsWhatIsLeft() throws {
    var leftoverSawCancel = false
    let value = try AioSwift.run { () async throws -> Int in
      let loop = try getRunningLoop()
      try loop.createTask { () async throws -> Void in
        do { try await sleep(100) } catch is CancelledError { leftoverSawCancel = true; throw CancelledError() }
      }
      try await sleep(0.001)
      return 9
    }
    XCTAssertEqual(value, 9)
    XCTAssertTrue(leftoverSawCancel)
  }

  func testRunInsideARunningLoopIsAnError() throws {
    let result = try AioSwift.run { () async throws -> String in
      do {
        _ = try AioSwift.run { 1 }
        return "ran"
      } catch let error as RuntimeError {
        return errorName(error.code)
      }
    }
    XCTAssertEqual(result, "AIOS_ERUNNING")
  }

  func testRunnerKeepsOneLoopForSeveralRuns() throws {
    let runner = Runner()
    let first = try runner.run { () async throws -> ObjectIdentifier in ObjectIdentifier(try getRunningLoop()) }
    let second = try runner.run { () async throws -> ObjectIdentifier in ObjectIdentifier(try getRunningLoop()) }
    XCTAssertEqual(first, second)
    XCTAssertEqual(first, ObjectIdentifier(try runner.loop))
    try runner.close()
    try runner.close()
    XCTAssertThrowsError(try runner.run { 1 })
  }

  func testErrorsOfTasksLeftAtShutdownAreReported() throws {
    var reports: [String] = []
    let runner = Runner()
    let loop = try runner.loop
    loop.exceptionHandler = { _, context in reports.append(context.message) }
    try runner.run { () async throws -> Void in
      try loop.createTask { () async throws -> Void in
        do { try await sleep(100) } catch is CancelledError { throw Boom() }
      }
      try await sleep(0)
    }
    try runner.close()
    XCTAssertEqual(reports, ["unhandled exception during asyncio.run() shutdown"])
  }
}
