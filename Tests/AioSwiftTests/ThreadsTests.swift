import AioSwift
import Glibc
import XCTest

/// A POSIX semaphore shared with worker threads.
final class Gate: @unchecked Sendable {
  private var semaphore = sem_t()
  init() { sem_init(&semaphore, 0, 0) }
  deinit { sem_destroy(&semaphore) }
  func wait() { sem_wait(&semaphore) }
  func open(_ times: Int) { for _ in 0..<times { sem_post(&semaphore) } }
}

final class ThreadsTests: LeakCheckedTestCase {
  /// Workers block until a loop callback opens the gate: they can only
  /// finish if the loop runs while they block.
  func testWorkersRunWhileTheLoopGoesOn() throws {
    try runMain {
      let loop = try getRunningLoop()
      let gate = Gate()
      let workers = try (0..<4).map { i in
        try spawn { () async throws -> Int in
          try await toThread { () -> Int in
            gate.wait()
            return i * 10
          }
        }
      }
      try loop.callLater(0.001) { gate.open(4) }
      var results: [Int] = []
      for worker in workers { results.append(try await worker.value) }
      XCTAssertEqual(results, [0, 10, 20, 30])
    }
  }

  func testAnErrorComesBack() throws {
    try runMain {
      do {
        _ = try await toThread { () throws -> Int in throw Boom(tag: 9) }
        XCTFail("expected Boom")
      } catch let error as Boom {
        XCTAssertEqual(error.tag, 9)
      }
    }
  }

  /// Cancelling the awaiting task leaves the work running; its result is
  /// dropped.
  func testCancellingTheAwaiter() throws {
    try runMain {
      let gate = Gate()
      let waiter = try spawn { try await toThread { () -> Int in gate.wait(); return 1 } }
      try await sleep(0)
      waiter.cancel()
      gate.open(1)
      do { _ = try await waiter.value; XCTFail("expected CancelledError") } catch is CancelledError {}
    }
  }
}
