import AioSwift
import XCTest

final class QueueTests: LeakCheckedTestCase {
  func testOrders() throws {
    try runMain {
      let fifo = Queue<Int>()
      let lifo = Queue<Int>(order: .lifo)
      let priority = Queue<Int>.priority()
      for item in [3, 1, 2] {
        try await fifo.put(item)
        try lifo.putNowait(item)
        try priority.putNowait(item)
      }
      var drained: [[Int]] = [[], [], []]
      for _ in 0..<3 {
        drained[0].append(try await fifo.get())
        drained[1].append(try lifo.getNowait())
        drained[2].append(try await priority.get())
      }
      XCTAssertEqual(drained, [[3, 1, 2], [2, 1, 3], [1, 2, 3]])
    }
  }

  func testPriorityTiesLeaveInArrivalOrder() throws {
    try runMain {
      let queue = Queue<(Int, String)>(order: .priority { $0.0 < $1.0 })
      for entry in [(2, "a"), (1, "b"), (2, "c"), (1, "d")] { try queue.putNowait(entry) }
      var names: [String] = []
      while !queue.isEmpty { names.append(try queue.getNowait().1) }
      XCTAssertEqual(names, ["b", "d", "a", "c"])
    }
  }

  func testNowaitErrors() throws {
    try runMain {
      let queue = Queue<Int>(maxsize: 1)
      XCTAssertThrowsError(try queue.getNowait()) { error in
        XCTAssertTrue(error is QueueEmpty, "\(error)")
      }
      try queue.putNowait(1)
      XCTAssertTrue(queue.isFull)
      XCTAssertThrowsError(try queue.putNowait(2)) { error in
        XCTAssertTrue(error is QueueFull, "\(error)")
      }
      XCTAssertEqual(queue.count, 1)
    }
  }

  func testPutWaitsForRoomAndGetWaitsForAnItem() throws {
    try runMain {
      let queue = Queue<Int>(maxsize: 1)
      var events: [String] = []
      let producer = try spawn { () async throws -> Void in
        for i in 1...3 {
          try await queue.put(i)
          events.append("put \(i)")
        }
      }
      try await yieldIterations()
      XCTAssertEqual(events, ["put 1"])
      let consumer = try spawn { () async throws -> [Int] in
        var got: [Int] = []
        for _ in 1...3 { got.append(try await queue.get()) }
        return got
      }
      try await producer.value
      let consumed = try await consumer.value
      XCTAssertEqual(consumed, [1, 2, 3])
      XCTAssertEqual(events, ["put 1", "put 2", "put 3"])
    }
  }

  /// A getter cancelled after put() woke it loses nothing: the item stays
  /// in the queue and the next getter is woken for it.
  func testACancelledGetterLosesNoItem() throws {
    try runMain {
      let queue = Queue<Int>()
      let first = try spawn { try await queue.get() }
      let second = try spawn { try await queue.get() }
      try await yieldIterations()
      try queue.putNowait(7)  // wakes first
      first.cancel()
      let item = try await second.value
      XCTAssertEqual(item, 7)
      XCTAssertTrue(first.isCancelled)
      XCTAssertTrue(queue.isEmpty)
    }
  }

  /// A putter woken by a get() and cancelled before it runs passes the room
  /// on to the next putter; one cancelled while it waits just leaves.
  func testAWokenThenCancelledPutterPassesTheRoomOn() throws {
    try runMain {
      let queue = Queue<Int>(maxsize: 1)
      try queue.putNowait(1)
      let first = try spawn { try await queue.put(2) }
      let second = try spawn { try await queue.put(3) }
      let third = try spawn { try await queue.put(4) }
      try await yieldIterations()
      third.cancel()  // still waiting: it leaves the putters
      XCTAssertEqual(try queue.getNowait(), 1)  // wakes first
      first.cancel()  // before first runs
      try await second.value
      do { try await first.value; XCTFail("expected CancelledError") } catch is CancelledError {}
      do { try await third.value; XCTFail("expected CancelledError") } catch is CancelledError {}
      XCTAssertEqual(try queue.getNowait(), 3)
      XCTAssertTrue(queue.isEmpty)
    }
  }

  func testTaskDoneAndJoin() throws {
    try runMain {
      let queue = Queue<Int>()
      var processed = 0
      for i in 0..<5 { try queue.putNowait(i) }
      let worker = try spawn { () async throws -> Void in
        while true {
          _ = try await queue.get()
          try await yieldIterations()
          processed += 1
          try queue.taskDone()
        }
      }
      try await queue.join()
      XCTAssertEqual(processed, 5)
      XCTAssertThrowsError(try queue.taskDone())
      worker.cancel()
      do { try await worker.value } catch is CancelledError {}
    }
  }

  func testShutdown() throws {
    try runMain {
      let queue = Queue<Int>(maxsize: 1)
      try queue.putNowait(1)
      let blockedPutter = try spawn { try await queue.put(2) }
      try await yieldIterations()
      try queue.shutdown()
      do { try await blockedPutter.value; XCTFail("expected QueueShutDown") } catch let error as QueueShutDown {
        XCTAssertEqual(errorName(error.code), "AIOS_EQUEUESHUTDOWN")
      }
      XCTAssertThrowsError(try queue.putNowait(3))
      let drained = try await queue.get()  // drains first
      XCTAssertEqual(drained, 1)
      do { _ = try await queue.get(); XCTFail("expected QueueShutDown") } catch is QueueShutDown {}
    }
  }

  func testImmediateShutdownDropsItemsAndWakesGetters() throws {
    try runMain {
      let empty = Queue<Int>()
      let getter = try spawn { try await empty.get() }
      try await yieldIterations()
      let full = Queue<Int>()
      for i in 0..<3 { try full.putNowait(i) }
      XCTAssertEqual(try full.shutdown(immediate: true), [0, 1, 2])
      try empty.shutdown(immediate: true)
      do { _ = try await getter.value; XCTFail("expected QueueShutDown") } catch is QueueShutDown {}
      try await full.join()  // nothing left unfinished
    }
  }
}
