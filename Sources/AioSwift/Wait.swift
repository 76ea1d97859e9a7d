// asyncio.wait (Lib/asyncio/tasks.py): wait until some, the first failing,
// or all of a set of futures are done, or a timeout passes. A timeout
// cancels nothing; the caller sorts the futures into done and pending.
internal import CAioSwift

/// asyncio's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED.
public enum ReturnWhen: Int32, Sendable {
  case firstCompleted = 1, firstException, allCompleted
}

/// asyncio's _wait as an Operation: it waits on one internal waiter that the
/// futures' callbacks (or the timeout) release; its tail is _wait's finally.
package final class WaitOperation: Operation {
  package let futures: [AnyFuture]
  private let returnWhen: ReturnWhen
  private var remaining: Int
  private var timeoutHandle: TimerHandle?
  private var tokens: [DoneCallbackToken] = []

  init(futures: [AnyFuture], timeout: Double?, returnWhen: ReturnWhen, loop: Loop) throws {
    self.futures = futures
    self.returnWhen = returnWhen
    remaining = futures.count
    if let timeout { try checkTime(timeout) }
    let waiter = RawFuture(loop: loop)
    super.init(waitingOn: waiter)
    if let timeout {
      timeoutHandle = try loop.callLater(timeout) { if !waiter.isDone { waiter.wake() } }
    }
    // As CPython, callbacks go on every future, done or not: a done one
    // calls back on the next iteration.
    tokens = futures.map { future in
      future.addDoneCallback { [weak self] done in self?.completed(done, waiter: waiter) }
    }
    // The futures hold the waiter through their callbacks, the waiter holds
    // this operation, and this one holds the futures.
    loop.atClose(self) { [weak self] in self?.removeCallbacks() }
  }

  private func removeCallbacks() {
    timeoutHandle?.cancel()
    timeoutHandle = nil
    for (future, token) in zip(futures, tokens) { future.removeDoneCallback(token) }
    tokens = []
  }

  /// _on_completion.
  private func completed(_ future: AnyFuture, waiter: AnyFuture) {
    remaining -= 1
    let failed = returnWhen == .firstException && !future.isCancelled && future.error != nil
    if failed { future.markErrorRetrieved() }
    if remaining <= 0 || returnWhen == .firstCompleted || failed {
      timeoutHandle?.cancel()
      if !waiter.isDone { waiter.wake() }
    }
  }

  override func advance(_ waiter: AnyFuture) {
    // _wait's finally: the timeout and the callbacks go.
    removeCallbacks()
    loop.notAtClose(self)
    if let cancelled = cancellation(of: waiter) { completeThrowing(cancelled) } else { completeReturning() }
  }

  /// The futures done now, and the others, in the order given.
  package var partition: (done: [AnyFuture], pending: [AnyFuture]) {
    (futures.filter { $0.isDone }, futures.filter { !$0.isDone })
  }

  override var typeName: String { "Wait" }
}

extension Loop {
  /// asyncio.wait: an operation done when `returnWhen` holds for `futures`
  /// (of this loop; duplicates count once), or after `timeout` seconds (nil:
  /// none). An empty set is an error, as in CPython.
  package func wait(_ futures: [AnyFuture], timeout: Double? = nil,
                   returnWhen: ReturnWhen = .allCompleted) throws -> WaitOperation {
    let unique = try distinctFutures(futures)
    guard !unique.isEmpty else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "Set of Tasks/Futures is empty.")
    }
    return try WaitOperation(futures: unique, timeout: timeout, returnWhen: returnWhen, loop: self)
  }
}

/// asyncio.wait from a task: the futures done and those still pending.
/// (Disfavoured, so that tasks of one type get the overload that returns
/// them as tasks.)
@_disfavoredOverload
public func wait(_ futures: [AnyFuture], timeout: Double? = nil,
                 returnWhen: ReturnWhen = .allCompleted) async throws
  -> (done: [AnyFuture], pending: [AnyFuture])
{
  let operation = try getRunningLoop().wait(futures, timeout: timeout, returnWhen: returnWhen)
  try await operation.wait()
  return operation.partition
}
