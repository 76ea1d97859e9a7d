// asyncio.gather and asyncio.shield (Lib/asyncio/tasks.py).
internal import CAioSwift

/// gather's outer future (asyncio's _GatheringFuture): done when every child
/// is, or at the first failure unless errors are returned. Cancelling it
/// cancels the children. Results stay in the children; a C caller reads them
/// there, Swift's gather collects them.
public final class GatheringFuture: AnyFuture {
  public let children: [AnyFuture]
  private let returnExceptions: Bool
  private var finished = 0
  private var cancelRequested = false
  private var storedHandle: UInt64 = 0
  package override var foreignHandle: UInt64 {
    get { storedHandle }
    set { storedHandle = newValue }
  }

  init(children: [AnyFuture], returnExceptions: Bool, loop: Loop) {
    self.children = children
    self.returnExceptions = returnExceptions
    super.init(loop: loop)
  }

  /// Cancels every child; the gather ends cancelled once they are done.
  @discardableResult
  public override func cancel(message: String? = nil) -> Bool {
    guard !isDone else { return false }
    var cancelled = false
    for child in children where child.cancel(message: message) { cancelled = true }
    if cancelled { cancelRequested = true }
    return cancelled
  }

  /// _done_callback: counts the child, fails fast on the first error.
  func childDone(_ child: AnyFuture) {
    finished += 1
    if isDone {
      if !child.isCancelled { child.markErrorRetrieved() }
      return
    }
    if !returnExceptions {
      if child.isCancelled {
        finishCancelled(by: child)
        return
      }
      if let error = child.error {
        child.markErrorRetrieved()
        self.error = error
        finish(.finished)
        return
      }
    }
    guard finished == children.count else { return }
    for child in children where !child.isCancelled { child.markErrorRetrieved() }
    if cancelRequested {
      // Cancelling the gather cancels it, whatever return_exceptions says.
      finishCancelled(by: child)
    } else {
      finish(.finished)
    }
  }

  /// As CPython's gather, the outer future is not cancelled itself: it
  /// fails with the child's CancelledError, which awaiting it raises.
  private func finishCancelled(by child: AnyFuture) {
    error = child.makeCancelledError()
    finish(.finished)
  }

  override var typeName: String { "GatheringFuture" }
}

extension Loop {
  /// The futures of a combinator: each once, in the order given, all of this
  /// loop (asyncio turns its arguments into a set the same way).
  func distinctFutures(_ futures: [AnyFuture]) throws -> [AnyFuture] {
    try checkUsable()
    var seen = Set<ObjectIdentifier>(minimumCapacity: futures.count)
    var unique: [AnyFuture] = []
    unique.reserveCapacity(futures.count)
    for future in futures where seen.insert(ObjectIdentifier(future)).inserted {
      guard future.loop === self else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
      unique.append(future)
    }
    return unique
  }

  /// asyncio.gather over futures and tasks of this loop (a future listed
  /// twice counts once). An empty gather is done at once.
  public func gather(_ futures: [AnyFuture], returnExceptions: Bool = false) throws -> GatheringFuture {
    let unique = try distinctFutures(futures)
    let outer = GatheringFuture(children: unique, returnExceptions: returnExceptions, loop: self)
    if unique.isEmpty {
      outer.finish(.finished)
      return outer
    }
    var alreadyDone: [AnyFuture] = []
    for child in unique {
      if child.isDone {
        alreadyDone.append(child)
      } else {
        // Weak: a gather nobody holds has no one to tell. It still takes
        // its children's errors, as CPython's callback (which holds it) does.
        child.addDoneCallback { [weak outer] child in
          if let outer { outer.childDone(child) } else if !child.isCancelled { child.markErrorRetrieved() }
        }
      }
    }
    for child in alreadyDone { outer.childDone(child) }
    return outer
  }
}

/// asyncio.gather for Swift tasks with one result type: their results in
/// argument order, or the first error (every error's place holds it in
/// asyncio with return_exceptions; use Loop.gather for that).
public func gather<T>(_ tasks: [AioTask<T>]) async throws -> [T] {
  let loop = try getRunningLoop()
  try await loop.gather(tasks.map { $0 as AnyFuture }).wait()
  return try tasks.map { try $0.result() }
}

/// shield's outer future: follows its inner future, but cancelling it
/// leaves the inner one running. A C result is lent from the inner future,
/// which the outer one keeps.
public final class ShieldFuture: AnyFuture {
  public let inner: AnyFuture
  /// A C result: the inner future's, lent (the inner one frees it), or
  /// one set on the shield by its user, which the shield owns.
  private var kept = KeptCResult()
  private var handle: UInt64 = 0
  /// The shield ended with the inner future's result: its value is read
  /// from the inner future each time, so one taken out of it
  /// (aios_future_take_result) is gone from the shield too, never left
  /// dangling here.
  private var lendsInnerResult = false
  override var cValue: UnsafeMutableRawPointer? {
    get { lendsInnerResult ? inner.cValue : kept.value }
    set {
      lendsInnerResult = false
      kept.value = newValue
    }
  }
  override var cDestructor: CDestructor? {
    get { kept.destructor }
    set { kept.destructor = newValue }
  }
  override var keepsCResult: Bool { true }
  package override var foreignHandle: UInt64 {
    get { handle }
    set { handle = newValue }
  }
  deinit { kept.free() }

  init(inner: AnyFuture) {
    self.inner = inner
    super.init(loop: inner.loop)
  }

  /// _inner_done_callback.
  func innerDone() {
    // Cancelled, or given an outcome by its user: the inner's goes nowhere
    // (its value stays the inner's, which owns it).
    if isDone {
      if !inner.isCancelled { inner.markErrorRetrieved() }
      return
    }
    if inner.isCancelled {
      cancel(message: nil)
    } else if let error = inner.error {
      inner.markErrorRetrieved()
      self.error = error
      finish(.finished)
    } else {
      storeLentResult()
      finish(.finished)
    }
  }

  private func storeLentResult() { lendsInnerResult = true }

  override var typeName: String { "Shield" }
}

extension Loop {
  /// asyncio.shield: a future that follows `inner`; cancelling it does not
  /// cancel `inner`, whose result is not lost. A done `inner` is returned
  /// as it is.
  public func shield(_ inner: AnyFuture) throws -> AnyFuture {
    try checkUsable()
    guard inner.loop === self else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    if inner.isDone { return inner }
    let outer = ShieldFuture(inner: inner)
    let token = inner.addDoneCallback { [weak outer] _ in outer?.innerDone() }
    // _outer_done_callback: a cancelled outer stops listening to inner.
    outer.addDoneCallback { [weak inner] _ in
      if let inner, !inner.isDone { inner.removeDoneCallback(token) }
    }
    return outer
  }
}

/// asyncio.shield for a Swift task: awaits it, but cancelling the awaiting
/// task leaves `task` running (the caller gets CancelledError).
public func shield<T>(_ task: AioTask<T>) async throws -> T {
  let outer = try task.loop.shield(task)
  try await outer.wait()
  return try task.result()
}
