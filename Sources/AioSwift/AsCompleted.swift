// asyncio.as_completed (Lib/asyncio/tasks.py, 3.13's _AsCompletedIterator):
// hands out futures in the order they finish; after the timeout, every
// remaining `next` fails with TimeoutError. Completions go through a queue,
// as in CPython; an entry is the finished future's index (-1: timeout).
internal import CAioSwift

public final class AsCompleted: AsyncSequence, AsyncIteratorProtocol {
  public typealias Element = AnyFuture

  public let futures: [AnyFuture]
  private let completions: ObjectQueue
  private var pending: [Int]
  private var left: Int
  private var timeoutHandle: TimerHandle?
  private var tokens: [DoneCallbackToken?]
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  /// A completion in the queue: the index of a finished future, or -1 for
  /// the timeout.
  final class Completion {
    let index: Int
    init(_ index: Int) { self.index = index }
  }

  init(futures: [AnyFuture], timeout: Double?, loop: Loop) throws {
    if let timeout { try checkTime(timeout) }
    self.futures = futures
    completions = ObjectQueue(loop: loop)
    pending = Array(futures.indices)
    left = futures.count
    tokens = Array(repeating: nil, count: futures.count)
    for (index, future) in futures.enumerated() {
      tokens[index] = future.addDoneCallback { [weak self] _ in self?.completed(index) }
    }
    if !futures.isEmpty, let timeout {
      timeoutHandle = try loop.callLater(timeout) { [weak self] in self?.timedOut() }
    }
  }

  deinit {
    timeoutHandle?.cancel()
    for (future, token) in zip(futures, tokens) { if let token { future.removeDoneCallback(token) } }
  }

  /// _handle_completion.
  private func completed(_ index: Int) {
    guard let position = pending.firstIndex(of: index) else { return }  // the timeout came first
    pending.remove(at: position)
    tokens[index] = nil
    try? completions.putNowait(Completion(index))
    if pending.isEmpty { timeoutHandle?.cancel() }
  }

  /// _handle_timeout: one sentinel for each future not finished.
  private func timedOut() {
    for index in pending {
      if let token = tokens[index] { futures[index].removeDoneCallback(token) }
      tokens[index] = nil
      try? completions.putNowait(Completion(-1))
    }
    pending.removeAll()
  }

  /// The next completion: nil once every future was handed out; else a
  /// future whose C result is the finished future's index, or which fails
  /// with TimeoutError.
  package func nextOperation() throws -> AnyFuture? {
    guard left > 0 else { return nil }
    let loop = try completions.loop()
    left -= 1
    switch try completions.getOperation() {
    case .ready(let completion):
      let index = unsafeDowncast(completion, to: Completion.self).index
      if index < 0 {
        let failed = RawFuture(loop: loop)
        try failed.setError(TimeoutError())
        return failed
      }
      return AnyFuture.done(on: loop, value: UnsafeMutableRawPointer(bitPattern: index))
    case .waiting(let get):
      return Next(get: get)
    }
  }

  /// Turns the queue's get into the index, or the timeout into an error.
  private final class Next: Operation {
    init(get: AnyFuture) { super.init(waitingOn: get) }

    override func advance(_ get: AnyFuture) {
      if let cancelled = cancellation(of: get) { return completeThrowing(cancelled) }
      guard let completion = (get as? ObjectQueue.Get)?.item else { return completeOrphaned() }
      let index = unsafeDowncast(completion, to: Completion.self).index
      if index < 0 { return completeThrowing(TimeoutError()) }
      storeCResult(UnsafeMutableRawPointer(bitPattern: index), destructor: nil)
      completeReturning()
    }
  }

  /// `for try await future in asCompleted(...)`: the futures as they finish.
  public func next() async throws -> AnyFuture? {
    guard let operation = try nextOperation() else { return nil }
    try await operation.wait()
    return futures[Int(bitPattern: operation.cResult)]
  }

  public func makeAsyncIterator() -> AsCompleted { self }
}

extension Loop {
  /// asyncio.as_completed over futures of this loop (duplicates count once).
  public func asCompleted(_ futures: [AnyFuture], timeout: Double? = nil) throws -> AsCompleted {
    try AsCompleted(futures: try distinctFutures(futures), timeout: timeout, loop: self)
  }
}

/// asyncio.as_completed from a task. (Disfavoured, so that tasks of one
/// type get the overload that yields them as tasks.)
@_disfavoredOverload
public func asCompleted(_ futures: [AnyFuture], timeout: Double? = nil) throws -> AsCompleted {
  try getRunningLoop().asCompleted(futures, timeout: timeout)
}
