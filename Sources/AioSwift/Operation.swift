// A future whose outcome is decided by the rest of an asyncio coroutine.
//
// asyncio's blocking primitives are coroutines: Lock.acquire appends a waiter
// future, awaits it, then (when its task resumes) removes it and takes the
// lock, or on cancellation passes the wake-up on. Here such an operation is a
// future: it waits on an inner future, and `advance` runs the coroutine's
// tail when the inner one is done, in the iteration where asyncio's task
// would resume. It then completes inline, so whoever awaits the operation
// resumes in that same iteration, exactly as the task running the coroutine
// would. C, Swift and bindings all await the same object.
internal import CAioSwift

package class Operation: RawFuture {
  override var outcomeIsSetFromOutside: Bool { false }
  /// The state of the operation as its own waiter. Most blocking calls
  /// append a waiter future to their primitive and await it; here the
  /// operation itself is that waiter (waitAsWaiter), which saves a future,
  /// its callback and its scheduling on every call that blocks.
  enum Waiter: UInt8 {
    case no  // not waiting as a waiter
    case pending  // in the primitive's queue
    case woken  // fut.set_result(None): `advance` is scheduled
    case cancelled  // fut.cancel(): `advance` is scheduled
  }
  private(set) var waiter = Waiter.no
  private var waiterCancellation: CancelledError?

  /// The future the operation waits on now. Not retained, as operations do
  /// not retain their primitive (PrimitiveReference): a primitive owns its
  /// waiters, which own their operations, and nothing points back, so
  /// dropping a primitive with waits pending frees them all. A waiter freed
  /// unfinished tells its operation (innerVanished), so this never dangles;
  /// a primitive freed with operations queued as waiters fails them
  /// (waiterVanished).
  private(set) var inner: AnyFuture? {
    get { innerReference?.takeUnretainedValue() }
    set { innerReference = newValue.map { Unmanaged.passUnretained($0) } }
  }
  // Unmanaged rather than unowned(unsafe): reading an unowned(unsafe)
  // reference retains it with an atomic instruction even in the library's
  // non-atomic build.
  private var innerReference: Unmanaged<AnyFuture>?
  private var advancing = false
  /// A cancel() that arrived after `inner` was done: the operation is
  /// cancelled at its next step, as a task with _must_cancel, and, like
  /// _must_cancel, the request is spent once it is raised (cancellation(of:))
  /// or handed to the next await (wait(on:)).
  private var pendingCancel: CancelledError?

  /// An operation that starts by waiting on `waiter`.
  init(waitingOn waiter: AnyFuture) {
    super.init(loop: waiter.loop)
    wait(on: waiter)
  }

  /// An operation that starts on its own (it waits or completes itself).
  override init(loop: Loop) { super.init(loop: loop) }

  /// Waits on `future`; `advance(_:)` runs once it is done.
  final func wait(on future: AnyFuture) {
    inner = future
    future.addDoneCallback(.operation(self))
    // A cancel() that came while the coroutine ran (user code it calls, such
    // as wait_for's predicate, cancelled the task): as Task.__step does with
    // _must_cancel, the future it awaits next is cancelled at once.
    if let pending = pendingCancel,
       future.cancel(message: pending.message.isEmpty ? nil : pending.message) {
      pendingCancel = nil
    }
  }

  /// Waits as its own waiter; `advance(self)` runs once woken or cancelled.
  final func waitAsWaiter() {
    waiter = .pending
  }

  /// The waiter's done(): woken or cancelled, its advance still to run.
  final var waiterIsDone: Bool { waiter == .woken || waiter == .cancelled }
  final var waiterIsCancelled: Bool { waiter == .cancelled }

  /// The waiter's set_result(None).
  final func wakeWaiter() {
    guard waiter == .pending else { return }
    waiter = .woken
    if !loop.isClosed { loop.schedule(.advance(self)) }
  }

  /// The waiter's cancel(); false if it was done.
  final func cancelWaiter(message: String?) -> Bool {
    guard waiter == .pending else { return false }
    waiter = .cancelled
    waiterCancellation = CancelledError(message)
    if !loop.isClosed { loop.schedule(.advance(self)) }
    return true
  }

  /// The scheduled step of an operation woken or cancelled as a waiter.
  final func waiterDone() {
    guard state == .pending, waiterIsDone else { return }
    advancing = true
    advance(self)
    advancing = false
  }

  /// The waiter's state was read: it leaves the primitive's queue.
  final func leaveAsWaiter() {
    waiter = .no
    waiterCancellation = nil
  }

  /// The primitive went away with this operation queued: it can never go on.
  final func waiterVanished() {
    guard waiter == .pending, state == .pending else { return }
    waiter = .no
    error = RuntimeError(code: AIOS_EINVAL.rawValue, "the primitive was freed")
    finish(.finished)
  }

  final func innerDone(_ future: AnyFuture) {
    guard state == .pending, future === inner else { return }
    inner = nil
    advancing = true
    advance(future)
    advancing = false
  }

  /// The coroutine's tail: inspect `inner`, then wait again or complete.
  func advance(_ inner: AnyFuture) {
    fatalError("Operation.advance is abstract")
  }

  /// The CancelledError the coroutine would see at its await: the inner
  /// future's, or one requested after the inner future was done. Raising it
  /// spends the request (Task.__step clears _must_cancel when it throws it):
  /// an operation that goes on after catching it (Condition.wait re-acquiring
  /// its lock) must not meet it again at its next await. A cancelled inner
  /// future raises its own error, the first request's message, as in
  /// Task.__step.
  final func cancellation(of inner: AnyFuture) -> CancelledError? {
    let pending = pendingCancel
    pendingCancel = nil
    if inner === self { return waiterCancellation ?? pending }
    return inner.isCancelled ? inner.makeCancelledError() : pending
  }

  /// Cancelling the operation cancels what it waits on; the coroutine's tail
  /// then runs its cancellation branch.
  @discardableResult
  package override func cancel(message: String? = nil) -> Bool {
    guard state == .pending else { return false }
    if loop.isClosed {
      // Its loop dropped the callbacks that would have run the rest, so
      // `inner` may be gone: the operation just ends cancelled.
      error = CancelledError(message)
      finish(.cancelled)
      return true
    }
    if waiter == .pending { return cancelWaiter(message: message) }
    if let inner, inner.cancel(message: message) { return true }
    pendingCancel = CancelledError(message)
    if inner == nil && waiter == .no && !advancing {
      // What it waited on is gone with its primitive: nothing is left to run.
      error = pendingCancel
      finish(.cancelled)
    }
    return true
  }

  /// The primitive was freed while the operation still needed it.
  final func completeOrphaned() {
    completeThrowing(RuntimeError(code: AIOS_EINVAL.rawValue, "the primitive was freed"))
  }

  /// The future it waited on was freed unfinished (its primitive is gone):
  /// the operation can never go on.
  final func innerVanished(_ future: AnyFuture) {
    guard inner === future, state == .pending else { return }
    inner = nil
    error = RuntimeError(code: AIOS_EINVAL.rawValue, "the primitive was freed")
    finish(.finished)
  }

  /// Sets the raw C result before the operation completes.
  package final func storeCResult(_ value: UnsafeMutableRawPointer?, destructor: CDestructor?) {
    cValue = value
    cDestructor = destructor
  }

  final func completeReturning() {
    finish(.finished, inline: true)
  }

  final func completeThrowing(_ error: any Error) {
    if error is CancelledError {
      self.error = error
      finish(.cancelled, inline: true)
    } else {
      self.error = error
      finish(.finished, inline: true)
    }
  }

  override var typeName: String { "Operation" }
}

extension AnyFuture {
  /// A future that is already done (for an operation that did not block),
  /// with an optional C result.
  package static func done(on loop: Loop, value: UnsafeMutableRawPointer? = nil,
                          destructor: CDestructor? = nil) -> AnyFuture {
    let future = RawFuture(loop: loop)
    future.cValue = value
    future.cDestructor = destructor
    future.finish(.finished)
    return future
  }
}
