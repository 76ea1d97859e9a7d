// What every test file uses: the leak-checked test case and the helpers
// that run and spawn tasks.
import AioSwift
import XCTest

/// Counts live objects at the start of a test and checks, as libuv's tests
/// do, that every one made since is gone once the test closed its loop.
class LeakCheckedTestCase: XCTestCase {
  private var baseline = LiveObjects.counts

  override func setUp() {
    super.setUp()
    baseline = LiveObjects.counts
  }

  override func tearDown() {
    XCTAssertEqual(LiveObjects.counts, baseline, "objects leaked")
    super.tearDown()
  }

  /// A loop for one test: closed and released before the leak check.
  func withLoop(_ body: (Loop) throws -> Void) throws {
    let loop = try Loop()
    defer { try? loop.close() }
    try body(loop)
  }
}

/// Runs `body` as the main task of a fresh loop (asyncio.run), then checks
/// nothing leaked (LeakCheckedTestCase).
extension LeakCheckedTestCase {
  func runMain<T>(_ body: @escaping () async throws -> T) throws -> T {
    try AioSwift.run(body)
  }
}

/// Yields `n` loop iterations (asyncio.sleep(0) n times).
func yieldIterations(_ n: Int = 1) async throws {
  for _ in 0..<n { try await sleep(0) }
}

func spawn<T>(_ body: @escaping () async throws -> T) throws -> AioTask<T> {
  try getRunningLoop().createTask(body)
}
