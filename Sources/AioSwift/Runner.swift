// asyncio.run and asyncio.Runner: run a main task on a loop, then cancel what
// is left and close the loop.
internal import CAioSwift

public final class Runner {
  private var ownLoop: Loop?
  private var closed = false
  private let debug: Bool
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  public init(debug: Bool = false) {
    self.debug = debug
    LiveObjects.runners.add(1, ordering: .relaxed)
  }

  deinit {
    closeWhenLetGo()
    LiveObjects.runners.subtract(1, ordering: .relaxed)
  }

  /// Nobody will close the runner any more: it closes, and when that cannot
  /// finish (its loop runs: a task let go of the runner; or a task stopped
  /// the loop while the others were cancelled) its loop closes anyway, now
  /// or once it stops, dropping the tasks left as a closed loop does.
  /// Without this the loop would have no owner left to close it, and a
  /// request on libuv's threads (a lookup) would keep it alive for ever.
  package func closeWhenLetGo() {
    do {
      try close()
    } catch {
      guard let loop = ownLoop else { return }
      closed = true
      ownLoop = nil
      loop.closeNowOrWhenStopped()
    }
  }

  /// The runner's loop, created on first use (asyncio's Runner.get_loop()).
  public var loop: Loop {
    get throws {
      guard !closed else { throw RuntimeError(code: AIOS_ECLOSED.rawValue, "Runner is closed") }
      if let ownLoop { return ownLoop }
      let loop = try Loop()
      loop.debug = debug
      ownLoop = loop
      return loop
    }
  }

  /// Runs `body` as the main task until it is done; returns its result.
  public func run<T>(_ body: @isolated(any) @escaping () async throws -> T) throws -> T {
    try checkRunsOnTheLoop(body.isolation)
    let task = try runTask { loop in try loop.createTask { try await body() } }
    return try task.result()
  }

  /// Runs a main task made by `makeTask` on the runner's loop until it is
  /// done, and returns it (done, whatever its outcome).
  public func runTask<Task: TaskBase>(_ makeTask: (Loop) throws -> Task) throws -> Task {
    guard runningLoopOnThisThread() == nil else {
      throw RuntimeError(code: AIOS_ERUNNING.rawValue,
                         "Runner.run() cannot be called from a running event loop")
    }
    let loop = try self.loop
    let task = try makeTask(loop)
    try loop.runUntilDone(task)
    return task
  }

  /// Cancels the tasks still pending, waits for them, closes the loop.
  /// Closing twice does nothing.
  public func close() throws {
    guard !closed else { return }
    guard let loop = ownLoop else {
      closed = true
      return
    }
    guard !loop.isRunning else {
      throw RuntimeError(code: AIOS_ERUNNING.rawValue, "Cannot close a running event loop")
    }
    try cancelAllTasks(loop)
    try loop.close()
    closed = true
    ownLoop = nil
  }
}

/// asyncio.runners._cancel_all_tasks: cancel every pending task, run the
/// loop until they are all done, report the errors they ended with.
func cancelAllTasks(_ loop: Loop) throws {
  let tasks = loop.allTasks()
  if tasks.isEmpty { return }
  for task in tasks { task.cancel() }
  let allDone = RawFuture(loop: loop)
  var remaining = tasks.count
  for task in tasks {
    task.addDoneCallback { _ in
      remaining -= 1
      if remaining == 0 { try? allDone.setCResult(nil, destructor: nil) }
    }
  }
  try loop.runUntilDone(allDone)
  for task in tasks where !task.isCancelled {
    if let error = task.error {
      task.markErrorRetrieved()
      loop.callExceptionHandler(ExceptionContext(
        message: "unhandled exception during asyncio.run() shutdown", error: error, future: task))
    }
  }
}

/// asyncio.run: runs `body` as the main task of a new loop, then cancels
/// the tasks left, and closes the loop.
public func run<T>(debug: Bool = false, _ body: @isolated(any) @escaping () async throws -> T) throws -> T {
  try checkRunsOnTheLoop(body.isolation)
  let runner = Runner(debug: debug)
  defer { try? runner.close() }
  return try runner.run(body)
}
