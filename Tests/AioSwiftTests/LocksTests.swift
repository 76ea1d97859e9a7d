import AioSwift
import XCTest

final class LockTests: LeakCheckedTestCase {
  func testWaitersAcquireInFIFOOrder() throws {
    try runMain {
      let lock = Lock()
      var order: [Int] = []
      try await lock.acquire()
      let tasks = try (1...3).map { i in
        try spawn { () async throws -> Void in
          try await lock.acquire()
          order.append(i)
          try lock.release()
        }
      }
      try await yieldIterations()
      XCTAssertEqual(order, [])
      try lock.release()
      for task in tasks { try await task.value }
      XCTAssertEqual(order, [1, 2, 3])
      XCTAssertFalse(lock.isLocked)
    }
  }

  func testReleasingAnUnlockedLockIsAnError() throws {
    try runMain {
      XCTAssertThrowsError(try Lock().release()) { error in
        XCTAssertEqual(errorName((error as! RuntimeError).code), "AIOS_ENOTACQUIRED")
      }
    }
  }

  func testACancelledWaiterNeverHoldsTheLock() throws {
    try runMain {
      let lock = Lock()
      try await lock.acquire()
      let waiter = try spawn { try await lock.acquire() }
      try await yieldIterations()
      waiter.cancel()
      try await yieldIterations()
      XCTAssertTrue(waiter.isCancelled)
      try lock.release()
      XCTAssertFalse(lock.isLocked)
      try await lock.acquire()  // not blocked by the cancelled waiter
      try lock.release()
    }
  }

  /// CPython's test_cancel_race: A holds, B and C wait; A releases and B is
  /// cancelled at once. C must get the lock.
  func testCancelRace() throws {
    try runMain {
      let lock = Lock()
      let loop = try getRunningLoop()
      let blocker = loop.createFuture(of: Void.self)
      func lockit(_ blocker: Future<Void>?) -> () async throws -> Void {
        return {
          try await lock.acquire()
          defer { try? lock.release() }
          if let blocker { try await blocker.value }
        }
      }
      let a = try spawn(lockit(blocker))
      try await yieldIterations()
      XCTAssertTrue(lock.isLocked)
      let b = try spawn(lockit(nil))
      try await yieldIterations()
      let c = try spawn(lockit(nil))
      try await yieldIterations()
      try blocker.setResult(())
      b.cancel()
      try await yieldIterations()
      XCTAssertFalse(lock.isLocked)
      XCTAssertTrue(a.isDone)
      XCTAssertTrue(b.isCancelled)
      try await c.value
      XCTAssertFalse(lock.isLocked)
    }
  }

  /// CPython's test_cancel_release_race: the waiter is woken by release()
  /// and cancelled before it runs; the lock must go to the next waiter.
  func testWokenThenCancelledWaiterPassesTheLockOn() throws {
    try runMain {
      let lock = Lock()
      try await lock.acquire()
      var gotIt: [String] = []
      let b = try spawn { () async throws -> Void in
        try await lock.acquire()
        gotIt.append("b")
        try lock.release()
      }
      let c = try spawn { () async throws -> Void in
        try await lock.acquire()
        gotIt.append("c")
        try lock.release()
      }
      try await yieldIterations()
      try lock.release()  // wakes b
      b.cancel()          // before b runs
      try await c.value
      XCTAssertTrue(b.isCancelled)
      XCTAssertEqual(gotIt, ["c"])
      XCTAssertFalse(lock.isLocked)
    }
  }

  func testWithLock() throws {
    try runMain {
      let lock = Lock()
      let value = try await lock.withLock { () async throws -> Int in
        XCTAssertTrue(lock.isLocked)
        return 5
      }
      XCTAssertEqual(value, 5)
      XCTAssertFalse(lock.isLocked)
    }
  }
}

final class EventTests: LeakCheckedTestCase {
  func testSetWakesEveryWaiter() throws {
    try runMain {
      let event = Event()
      var woken: [Int] = []
      let tasks = try (1...3).map { i in
        try spawn { () async throws -> Void in
          try await event.wait()
          woken.append(i)
        }
      }
      try await yieldIterations()
      XCTAssertEqual(woken, [])
      event.set()
      XCTAssertTrue(event.isSet)
      for task in tasks { try await task.value }
      XCTAssertEqual(woken, [1, 2, 3])
      try await event.wait()  // set: does not wait
      event.clear()
      XCTAssertFalse(event.isSet)
    }
  }

  func testACancelledWaiter() throws {
    try runMain {
      let event = Event()
      let waiter = try spawn { try await event.wait() }
      try await yieldIterations()
      waiter.cancel()
      do {
        try await waiter.value
        XCTFail("expected a cancellation")
      } catch is CancelledError {}
      event.set()
    }
  }
}

final class ConditionTests: LeakCheckedTestCase {
  func testWaitWithoutTheLockIsAnError() throws {
    try runMain {
      let condition = Condition()
      do {
        try await condition.wait()
        XCTFail("expected an error")
      } catch let error as RuntimeError {
        XCTAssertEqual(errorName(error.code), "AIOS_ENOTACQUIRED")
      }
      XCTAssertThrowsError(try condition.notify())
    }
  }

  func testNotifyWakesWaitersInOrderAndTheyHoldTheLock() throws {
    try runMain {
      let condition = Condition()
      var result: [Int] = []
      let tasks = try (1...3).map { i in
        try spawn { () async throws -> Void in
          try await condition.acquire()
          try await condition.wait()
          XCTAssertTrue(condition.isLocked)
          result.append(i)
          try condition.release()
        }
      }
      try await yieldIterations(2)
      XCTAssertEqual(result, [])
      try await condition.acquire()
      try condition.notify(1)
      try condition.release()
      try await yieldIterations(2)
      XCTAssertEqual(result, [1])
      try await condition.acquire()
      try condition.notifyAll()
      try condition.release()
      for task in tasks { try await task.value }
      XCTAssertEqual(result, [1, 2, 3])
    }
  }

  func testCancelledWaitReacquiresTheLockFirst() throws {
    try runMain {
      let condition = Condition()
      var lockedWhenCancelled: Bool?
      let waiter = try spawn { () async throws -> Void in
        try await condition.acquire()
        do {
          try await condition.wait()
        } catch is CancelledError {
          lockedWhenCancelled = condition.isLocked
          try condition.release()
          throw CancelledError()
        }
      }
      try await yieldIterations(2)
      try await condition.acquire()  // the waiter released it in wait()
      waiter.cancel()
      try await yieldIterations(2)
      XCTAssertFalse(waiter.isDone, "it cannot finish before it has the lock again")
      try condition.release()
      do { try await waiter.value } catch is CancelledError {}
      XCTAssertEqual(lockedWhenCancelled, true)
      XCTAssertFalse(condition.isLocked)
    }
  }

  func testWaitForAPredicate() throws {
    try runMain {
      let condition = Condition()
      var ready = false
      var done = false
      let waiter = try spawn { () async throws -> Void in
        try await condition.acquire()
        try await condition.waitFor { ready }
        done = true
        try condition.release()
      }
      try await yieldIterations(2)
      try await condition.acquire()
      try condition.notify()
      try condition.release()
      try await yieldIterations(2)
      XCTAssertFalse(done)
      try await condition.acquire()
      ready = true
      try condition.notify()
      try condition.release()
      try await waiter.value
      XCTAssertTrue(done)
    }
  }

  func testAConditionOverAGivenLock() throws {
    try runMain {
      let lock = Lock()
      let condition = Condition(lock: lock)
      try await lock.acquire()
      XCTAssertTrue(condition.isLocked)
      try condition.release()
      XCTAssertFalse(lock.isLocked)
    }
  }
}

final class SemaphoreTests: LeakCheckedTestCase {
  func testPermitsAndFIFO() throws {
    try runMain {
      let semaphore = try Semaphore(value: 2)
      var order: [Int] = []
      try await semaphore.acquire()
      try await semaphore.acquire()
      XCTAssertTrue(semaphore.isLocked)
      let tasks = try (1...3).map { i in
        try spawn { () async throws -> Void in
          try await semaphore.acquire()
          order.append(i)
        }
      }
      try await yieldIterations()
      try semaphore.release()
      try semaphore.release()
      try await yieldIterations(2)
      XCTAssertEqual(order, [1, 2])
      try semaphore.release()
      for task in tasks { try await task.value }
      XCTAssertEqual(order, [1, 2, 3])
    }
  }

  func testBoundedSemaphoreRefusesTooManyReleases() throws {
    try runMain {
      let semaphore = try BoundedSemaphore(value: 1)
      XCTAssertThrowsError(try semaphore.release()) { error in
        XCTAssertEqual(errorName((error as! RuntimeError).code), "AIOS_ERELEASED")
      }
      try await semaphore.acquire()
      try semaphore.release()
      XCTAssertThrowsError(try Semaphore(value: -1))
    }
  }

  /// A waiter woken and then cancelled gives its permit to the next one.
  func testAWokenCancelledWaiterPassesItsPermitOn() throws {
    try runMain {
      let semaphore = try Semaphore(value: 0)
      let first = try spawn { try await semaphore.acquire() }
      let second = try spawn { try await semaphore.acquire() }
      try await yieldIterations()
      try semaphore.release()  // wakes first
      first.cancel()
      try await second.value
      XCTAssertTrue(first.isCancelled)
      XCTAssertTrue(semaphore.isLocked)
    }
  }
}

final class BarrierTests: LeakCheckedTestCase {
  func testPartiesGetDistinctIndexes() throws {
    try runMain {
      let barrier = try Barrier(parties: 3)
      let tasks = try (0..<3).map { _ in try spawn { try await barrier.wait() } }
      try await yieldIterations()
      var indexes: [Int] = []
      for task in tasks { indexes.append(try await task.value) }
      XCTAssertEqual(indexes.sorted(), [0, 1, 2])
      XCTAssertEqual(barrier.waiting, 0)
      XCTAssertFalse(barrier.isBroken)
    }
  }

  func testResetBreaksTheWaitersThenTheBarrierFillsAgain() throws {
    try runMain {
      let barrier = try Barrier(parties: 3)
      let waiters = try (0..<2).map { _ in try spawn { try await barrier.wait() } }
      try await yieldIterations(2)
      XCTAssertEqual(barrier.waiting, 2)
      try await barrier.reset()
      for waiter in waiters {
        do {
          _ = try await waiter.value
          XCTFail("expected BrokenBarrierError")
        } catch let error as BrokenBarrierError {
          XCTAssertEqual(errorName(error.code), "AIOS_EBROKENBARRIER")
        }
      }
      XCTAssertFalse(barrier.isBroken)
      let again = try (0..<3).map { _ in try spawn { try await barrier.wait() } }
      for task in again { _ = try await task.value }
    }
  }

  func testAbortBreaksTheBarrierForGood() throws {
    try runMain {
      let barrier = try Barrier(parties: 2)
      let waiter = try spawn { try await barrier.wait() }
      try await yieldIterations(2)
      try await barrier.abort()
      XCTAssertTrue(barrier.isBroken)
      do { _ = try await waiter.value; XCTFail("expected an error") } catch is BrokenBarrierError {}
      do { _ = try await barrier.wait(); XCTFail("expected an error") } catch is BrokenBarrierError {}
    }
  }
}
