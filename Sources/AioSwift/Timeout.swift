// asyncio.timeout and asyncio.timeout_at (Lib/asyncio/timeouts.py): a scope
// that cancels its task at a deadline, and turns only that cancellation into
// a TimeoutError. The scope counts the task's cancellation requests when it
// is entered; at exit, uncancel() tells whether the cancellation was its own.
internal import CAioSwift

public final class Timeout: CustomStringConvertible {
  enum State: String { case created, entered = "active", expiring, expired, exited = "finished" }

  private(set) var state = State.created
  /// The loop whose tasks the scope may guard (nil: any, bound on entry).
  public private(set) var loop: Loop?
  /// The deadline in loop time; nil for none.
  public private(set) var when: Double?
  private var handler: Handle?
  private var task: TaskBase?
  private var cancellingAtEntry = 0
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  public init(when: Double?, loop: Loop? = nil) {
    self.when = when
    self.loop = loop
    LiveObjects.primitives.add(1, ordering: .relaxed)
  }

  deinit {
    handler?.cancel()
    LiveObjects.primitives.subtract(1, ordering: .relaxed)
  }

  /// True once the deadline passed while the scope was active.
  public var isExpired: Bool { state == .expiring || state == .expired }

  /// `async with`: binds the scope to `task` (the current one) and arms it.
  public func enter(_ task: TaskBase) throws {
    guard state == .created else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "Timeout has already been entered")
    }
    if let loop, loop !== task.loop { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    guard !task.isDone else { throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "the task is done") }
    if let when { try checkTime(when) }
    let boundLoop = loop
    loop = task.loop
    state = .entered
    self.task = task
    cancellingAtEntry = task.cancelling
    do {
      try reschedule(when)
    } catch {
      // Not armed (a closed loop): the scope was never entered.
      state = .created
      self.task = nil
      loop = boundLoop
      throw error
    }
  }

  /// Moves the deadline (nil: none) of an active scope.
  public func reschedule(_ when: Double?) throws {
    if let when { try checkTime(when) }
    guard state == .entered else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, state == .created
        ? "Timeout has not been entered" : "Cannot change state of \(state.rawValue) Timeout")
    }
    self.when = when
    handler?.cancel()
    handler = nil
    guard let when, let loop = task?.loop else { return }
    if when <= loop.time() {
      handler = try loop.callSoon { [weak self] in self?.onTimeout() }
    } else {
      handler = try loop.callAt(when) { [weak self] in self?.onTimeout() }
    }
  }

  private func onTimeout() {
    guard state == .entered else { return }
    task?.cancel()
    state = .expiring
    handler = nil
  }

  /// Leaves the scope with the error the body raised (nil if none). Returns
  /// the error to raise: a TimeoutError for the scope's own cancellation,
  /// otherwise `error` as it was.
  public func exit(_ error: (any Error)?) throws -> (any Error)? {
    let error = error.map(asAsyncioError)
    guard state == .entered || state == .expiring else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "Timeout is not active")
    }
    handler?.cancel()
    handler = nil
    defer { task = nil }
    if state == .expiring {
      state = .expired
      // No newer cancel request than the scope's own: the cancellation is ours.
      if let task, task.uncancel() <= cancellingAtEntry, error is CancelledError {
        return TimeoutError()
      }
    } else {
      state = .exited
    }
    return error
  }

  public var description: String {
    var text = "<Timeout [\(state.rawValue)]"
    if state == .entered { text += " when=\(when.map { "\($0)" } ?? "None")" }
    return text + ">"
  }
}

/// asyncio.timeout: runs `body` in a scope that times out after `delay`
/// seconds (nil: never). `body` gets the scope, to reschedule it.
public func timeout<T>(_ delay: Double?, _ body: (Timeout) async throws -> T) async throws -> T {
  let loop = try getRunningLoop()
  return try await timeoutAt(delay.map { loop.time() + $0 }, body)
}

/// asyncio.timeout_at: the same with a deadline in loop time.
public func timeoutAt<T>(_ when: Double?, _ body: (Timeout) async throws -> T) async throws -> T {
  guard let task = currentTask() else {
    throw RuntimeError(code: AIOS_ENOLOOP.rawValue, "Timeout should be used inside a task")
  }
  let scope = Timeout(when: when)
  try scope.enter(task)
  let value: T
  do {
    value = try await body(scope)
  } catch {
    throw try scope.exit(error) ?? error
  }
  if let error = try scope.exit(nil) { throw error }
  return value
}

/// asyncio.wait_for on a future of this loop: its result, or TimeoutError
/// once `timeout` seconds have passed, after the future (a task: after it
/// finished cancelling). A timeout of 0 or less still takes a result that is
/// already there; nil waits for ever.
public func waitFor<T>(_ future: Future<T>, timeout delay: Double?) async throws -> T {
  try await waitFor(future as AnyFuture, timeout: delay) { try future.result() }
}

public func waitFor<T>(_ task: AioTask<T>, timeout delay: Double?) async throws -> T {
  try await waitFor(task as AnyFuture, timeout: delay) { try task.result() }
}

/// wait_for on any future; its result stays in the future. (Disfavoured,
/// so a Future<T> or AioTask<T> gets the overload that returns its value.)
@_disfavoredOverload
public func waitFor(_ future: AnyFuture, timeout delay: Double?) async throws {
  try await waitFor(future, timeout: delay) { try future.checkResult() }
}

private func waitFor<T>(_ future: AnyFuture, timeout delay: Double?,
                        result: () throws -> T) async throws -> T {
  if let delay { try checkTime(delay) }
  if let delay, delay <= 0 {
    if future.isDone { return try result() }
    // _cancel_and_wait: cancel it, wait until it is done, then report.
    future.cancel()
    try await future.waitDone()
    do {
      return try result()
    } catch is CancelledError {
      throw TimeoutError()
    }
  }
  return try await timeout(delay) { _ in
    try await future.wait()
    return try result()
  }
}

extension AnyFuture {
  /// Waits until the future is done without raising its outcome.
  func waitDone() async throws {
    if !isDone { try await suspendCurrentTask(until: self) }
  }
}
