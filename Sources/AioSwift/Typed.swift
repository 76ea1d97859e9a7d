// The combinators over typed tasks, and Duration spellings of every call
// that takes seconds: what a Swift caller expects next to asyncio's names.
// Each is a thin layer over the untyped combinator it names.

/// Seconds as asyncio counts them.
@inline(__always)
func seconds(_ duration: Duration) -> Double {
  let (whole, fraction) = duration.components
  return Double(whole) + Double(fraction) * 1e-18
}

// MARK: Tasks

/// asyncio.create_task: a task of the running loop running `body`.
@discardableResult
public func createTask<T>(name: String? = nil, eager: Bool = false,
                          _ body: @isolated(any) @escaping () async throws -> T) throws -> AioTask<T> {
  try getRunningLoop().createTask(name: name, eager: eager, body)
}

// MARK: gather

/// asyncio.gather for tasks of different result types: their results as a
/// tuple, in argument order, or the first error.
public func gather<each T>(_ tasks: repeat AioTask<each T>) async throws -> (repeat each T) {
  var futures: [AnyFuture] = []
  repeat futures.append(each tasks)
  try await getRunningLoop().gather(futures).wait()
  return (repeat try (each tasks).result())
}

/// asyncio.gather(..., return_exceptions=True) for tasks of one result type:
/// each task's result or error, in argument order.
public func gather<T>(_ tasks: [AioTask<T>], returnExceptions: Bool) async throws -> [Result<T, any Error>] {
  guard returnExceptions else { return try await gather(tasks).map { .success($0) } }
  try await getRunningLoop().gather(tasks.map { $0 as AnyFuture }, returnExceptions: true).wait()
  return tasks.map { task in Result { try task.result() } }
}

// MARK: wait and as_completed

/// asyncio.wait over tasks of one result type: the tasks done and those
/// still pending, as tasks.
public func wait<T>(_ tasks: [AioTask<T>], timeout: Double? = nil,
                    returnWhen: ReturnWhen = .allCompleted) async throws
  -> (done: [AioTask<T>], pending: [AioTask<T>])
{
  let (done, pending) = try await wait(tasks.map { $0 as AnyFuture }, timeout: timeout, returnWhen: returnWhen)
  return (done.map { unsafeDowncast($0, to: AioTask<T>.self) },
          pending.map { unsafeDowncast($0, to: AioTask<T>.self) })
}

/// asyncio.as_completed over tasks of one result type: `for try await task
/// in asCompleted(tasks)` yields each task as it finishes.
public final class TaskCompletions<T>: AsyncSequence, AsyncIteratorProtocol {
  public typealias Element = AioTask<T>
  private let futures: AsCompleted

  init(_ futures: AsCompleted) { self.futures = futures }

  public func next() async throws -> AioTask<T>? {
    try await futures.next().map { unsafeDowncast($0, to: AioTask<T>.self) }
  }

  public func makeAsyncIterator() -> TaskCompletions<T> { self }
}

public func asCompleted<T>(_ tasks: [AioTask<T>], timeout: Double? = nil) throws -> TaskCompletions<T> {
  TaskCompletions(try asCompleted(tasks.map { $0 as AnyFuture }, timeout: timeout))
}

// MARK: timeout without its scope

/// asyncio.timeout, for a body that does not reschedule its scope.
public func timeout<T>(_ delay: Double?, _ body: () async throws -> T) async throws -> T {
  try await timeout(delay) { (_: Timeout) in try await body() }
}

/// asyncio.timeout_at, for a body that does not reschedule its scope.
public func timeoutAt<T>(_ when: Double?, _ body: () async throws -> T) async throws -> T {
  try await timeoutAt(when) { (_: Timeout) in try await body() }
}

// MARK: Durations

/// asyncio.sleep for a Duration.
public func sleep(for duration: Duration) async throws { try await sleep(seconds(duration)) }

public func timeout<T>(_ delay: Duration, _ body: (Timeout) async throws -> T) async throws -> T {
  try await timeout(seconds(delay), body)
}

public func timeout<T>(_ delay: Duration, _ body: () async throws -> T) async throws -> T {
  try await timeout(seconds(delay), body)
}

public func waitFor<T>(_ task: AioTask<T>, timeout delay: Duration) async throws -> T {
  try await waitFor(task, timeout: seconds(delay))
}

public func waitFor<T>(_ future: Future<T>, timeout delay: Duration) async throws -> T {
  try await waitFor(future, timeout: seconds(delay))
}

extension Loop {
  /// asyncio's call_later for a Duration.
  @discardableResult
  public func callLater(_ delay: Duration, _ body: @escaping () throws -> Void) throws -> TimerHandle {
    try callLater(seconds(delay), body)
  }
}
