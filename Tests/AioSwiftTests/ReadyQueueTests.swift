@testable import AioSwift
import XCTest

final class ReadyQueueTests: LeakCheckedTestCase {
  /// FIFO across block boundaries, with pops interleaved, emptied and
  /// refilled; every handle it held is released.
  func testFIFOAcrossBlocks() throws {
    try withLoop { loop in
      var queue = ReadyQueue()
      var expected: [Handle] = []
      var popped: [Handle] = []
      func popOne() {
        guard case .handle(let handle)? = queue.popFirst() else { return XCTFail("queue ran dry") }
        popped.append(handle)
      }
      for round in 0..<3 {
        for i in 0..<(700 + round * 300) {
          let handle = try loop.callSoon {}
          expected.append(handle)
          queue.append(.handle(handle))
          if i % 3 == 0 { popOne() }
        }
        while !queue.isEmpty { popOne() }
        XCTAssertNil(queue.popFirst())
      }
      XCTAssertEqual(queue.count, 0)
      XCTAssertEqual(popped.count, expected.count)
      XCTAssertTrue(zip(popped, expected).allSatisfy { $0 === $1 })
      queue.releaseStorage()
      expected.forEach { $0.cancel() }
    }
  }
}
