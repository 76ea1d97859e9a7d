// asyncio's synchronization primitives (Lib/asyncio/locks.py): Lock, Event,
// Condition, Semaphore, BoundedSemaphore, Barrier. Each blocking call is an
// Operation whose `advance` is the code that follows `await fut` in CPython.
// The `...Operation()` methods return nil when the call did not block; the
// async methods are the Swift API over them.
internal import CAioSwift
import DequeModule

/// asyncio's _LoopBoundMixin: a primitive belongs to the loop it is made
/// for, or to the loop running when it is first used.
public class LoopBound {
  private var boundLoop: Loop?
  private let isQueue: Bool
  /// Cleared when the primitive goes away; its operations hold this rather
  /// than a weak reference, which would put every retain and release of the
  /// primitive on Swift's slower side-table path.
  let liveness = Liveness()
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  init(loop: Loop?, isQueue: Bool = false) {
    boundLoop = loop
    self.isQueue = isQueue
    if isQueue {
      LiveObjects.queues.add(1, ordering: .relaxed)
    } else {
      LiveObjects.primitives.add(1, ordering: .relaxed)
    }
  }

  deinit {
    liveness.isAlive = false
    if isQueue {
      LiveObjects.queues.subtract(1, ordering: .relaxed)
    } else {
      LiveObjects.primitives.subtract(1, ordering: .relaxed)
    }
  }

  /// The loop the primitive is bound to, unretained (nil: none yet).
  package var boundLoopAddress: UnsafeMutableRawPointer? {
    boundLoop.map { Unmanaged.passUnretained($0).toOpaque() }
  }

  /// The primitive's loop, checked for thread and state.
  @inline(__always)
  package func loop() throws -> Loop {
    // The common case: the loop is bound and running on this thread.
    if let loop = boundLoop, loop.isRunningOnThisThread { return loop }
    return try bindAndCheckLoop()
  }

  /// Throws unless the primitive may be used here (see loop()).
  @inline(__always)
  package func checkLoop() throws {
    if let loop = boundLoop, loop.isRunningOnThisThread { return }
    _ = try bindAndCheckLoop()
  }

  private func bindAndCheckLoop() throws -> Loop {
    if boundLoop == nil { boundLoop = try getRunningLoop() }
    let loop = boundLoop!
    try loop.checkUsable()
    guard loop.isRunningOrIdleOnThisThread else {
      throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue, "\(type(of: self)) is bound to a different event loop")
    }
    return loop
  }
}

/// Whether a primitive still lives (see LoopBound.liveness).
final class Liveness {
  var isAlive = true
}

/// An operation's reference to its primitive: it does not keep the
/// primitive alive (the primitive owns its waiters, which own their
/// operations), and it reads nil once the primitive is gone.
struct PrimitiveReference<T: LoopBound> {
  // Unmanaged rather than unowned(unsafe): reading an unowned(unsafe)
  // reference retains it with an atomic instruction even in the library's
  // non-atomic build.
  private let primitive: Unmanaged<T>
  private let liveness: Liveness

  init(_ primitive: T) {
    self.primitive = Unmanaged.passUnretained(primitive)
    liveness = primitive.liveness
  }

  var object: T? { liveness.isAlive ? primitive.takeUnretainedValue() : nil }
}

extension Deque where Element: AnyObject {
  /// deque.remove(fut), by identity.
  mutating func remove(_ waiter: Element) {
    // Waiters mostly leave from the front, where removing costs least.
    if first === waiter {
      removeFirst()
    } else if let index = firstIndex(where: { $0 === waiter }) {
      remove(at: index)
    }
  }
}

extension AnyFuture {
  /// set_result(None) for a waiter future.
  func wake() { try? setCResult(nil, destructor: nil) }
}

// MARK: Lock

/// asyncio.Lock: FIFO, not owned by a task.
public final class Lock: LoopBound {
  /// Blocked acquire() operations, each its own waiter.
  var waiters = Deque<Operation>()
  public internal(set) var isLocked = false

  public init(loop: Loop? = nil) { super.init(loop: loop) }

  deinit {
    for waiter in waiters { waiter.waiterVanished() }
  }

  /// acquire(); nil if the lock was taken at once.
  package func acquireOperation() throws -> AnyFuture? {
    let loop = try self.loop()
    // Fair: a caller waits its turn unless every waiter was cancelled.
    if !isLocked && waiters.allSatisfy({ $0.waiterIsCancelled }) {
      isLocked = true
      return nil
    }
    let acquire = Acquire(lock: self, loop: loop)
    waiters.append(acquire)
    return acquire
  }

  public func acquire() async throws {
    if let operation = try acquireOperation() { try await operation.wait() }
  }

  /// Releases the lock; releasing an unlocked lock is an error.
  public func release() throws {
    guard isLocked else { throw RuntimeError(code: AIOS_ENOTACQUIRED.rawValue, "Lock is not acquired.") }
    isLocked = false
    wakeUpFirst()
  }

  /// Runs `body` holding the lock (`async with lock`).
  /// `async with lock:`: the lock is released however `body` ends; an
  /// error of the release itself is thrown, as __aexit__'s would be.
  public func withLock<T>(_ body: () async throws -> T) async throws -> T {
    try await acquire()
    let value: T
    do {
      value = try await body()
    } catch {
      try release()
      throw error
    }
    try release()
    return value
  }

  func wakeUpFirst() {
    // A done waiter is already set to wake up (or was cancelled).
    if let first = waiters.first, !first.waiterIsDone { first.wakeWaiter() }
  }

  private final class Acquire: Operation {
    let lock: PrimitiveReference<Lock>
    init(lock: Lock, loop: Loop) {
      self.lock = PrimitiveReference(lock)
      super.init(loop: loop)
      waitAsWaiter()
    }
    override func advance(_: AnyFuture) {
      guard let lock = lock.object else { return completeOrphaned() }
      lock.waiters.remove(self)
      let cancelled = cancellation(of: self)
      leaveAsWaiter()
      if let cancelled {
        // Keep the invariant: if the lock is free, the next waiter runs.
        if !lock.isLocked { lock.wakeUpFirst() }
        completeThrowing(cancelled)
      } else {
        lock.isLocked = true
        completeReturning()
      }
    }
  }
}

// MARK: Event

/// asyncio.Event.
public final class Event: LoopBound {
  var waiters = Deque<AnyFuture>()
  public private(set) var isSet = false

  public init(loop: Loop? = nil) { super.init(loop: loop) }

  /// Sets the flag and wakes every waiter.
  public func set() {
    guard !isSet else { return }
    isSet = true
    // CPython's waiters remove themselves when they resume; all of them
    // leave now, so set() does it for them.
    while let waiter = waiters.popFirst() {
      if !waiter.isDone { waiter.wake() }
    }
  }

  public func clear() { isSet = false }

  /// wait(); nil if the flag is already set. The future is the waiter
  /// itself: after `await fut` CPython's wait() only removes it from the
  /// waiters, which set() has done, so no Operation is needed.
  package func waitOperation() throws -> AnyFuture? {
    let loop = try self.loop()
    if isSet { return nil }
    dropCancelledWaiters()
    let waiter = RawFuture(loop: loop)
    waiters.append(waiter)
    return waiter
  }

  public func wait() async throws {
    if let waiter = try waitOperation() { try await waiter.wait() }
  }

  /// Cancelled waiters stay until set(); an event that is never set drops
  /// them as new waiters come (from the front at once, all of them whenever
  /// the count doubles), so they cannot pile up.
  private func dropCancelledWaiters() {
    while let first = waiters.first, first.isCancelled { waiters.removeFirst() }
    if waiters.count >= 64 && waiters.count & (waiters.count - 1) == 0 {
      waiters.removeAll { $0.isCancelled }
    }
  }
}

// MARK: Condition

/// asyncio.Condition, over its own Lock or a given one.
public final class Condition: LoopBound {
  public let lock: Lock
  var waiters = Deque<AnyFuture>()

  public init(lock: Lock? = nil, loop: Loop? = nil) {
    self.lock = lock ?? Lock(loop: loop)
    super.init(loop: loop)
  }

  public var isLocked: Bool { lock.isLocked }
  package func acquireOperation() throws -> AnyFuture? { try lock.acquireOperation() }
  public func acquire() async throws { try await lock.acquire() }
  public func release() throws { try lock.release() }

  /// wait(): releases the lock, waits for a notify, re-acquires the lock
  /// (even when cancelled) before returning or throwing.
  package func waitOperation() throws -> AnyFuture {
    let loop = try self.loop()
    guard isLocked else {
      throw RuntimeError(code: AIOS_ENOTACQUIRED.rawValue, "cannot wait on un-acquired lock")
    }
    let waiter = RawFuture(loop: loop)
    try release()
    waiters.append(waiter)
    return Wait(condition: self, waiter: waiter)
  }

  public func wait() async throws { try await waitOperation().wait() }

  /// wait_for(predicate): waits until `predicate` holds; returns nil when it
  /// held at once.
  package func waitForOperation(_ predicate: @escaping () throws -> Bool) throws -> AnyFuture? {
    if try predicate() { return nil }
    return WaitFor(condition: self, predicate: predicate, first: try waitOperation())
  }

  public func waitFor(_ predicate: @escaping () throws -> Bool) async throws {
    if let operation = try waitForOperation(predicate) { try await operation.wait() }
  }

  /// Wakes up to `n` waiters; the lock must be held.
  public func notify(_ n: Int = 1) throws {
    guard isLocked else {
      throw RuntimeError(code: AIOS_ENOTACQUIRED.rawValue, "cannot notify on un-acquired lock")
    }
    notifyWaiters(n)
  }

  public func notifyAll() throws { try notify(waiters.count) }

  func notifyWaiters(_ n: Int) {
    var woken = 0
    for waiter in waiters {
      if woken >= n { break }
      if !waiter.isDone {
        woken += 1
        waiter.wake()
      }
    }
  }

  private final class Wait: Operation {
    let condition: PrimitiveReference<Condition>
    /// The error the coroutine is raising while it re-acquires the lock.
    var raising: (any Error)?
    var reacquiring = false

    init(condition: Condition, waiter: AnyFuture) {
      self.condition = PrimitiveReference(condition)
      super.init(waitingOn: waiter)
    }

    override func advance(_ inner: AnyFuture) {
      guard let condition = condition.object else { return completeOrphaned() }
      if !reacquiring {
        condition.waiters.remove(inner)
        raising = cancellation(of: inner)
        reacquiring = true
      } else if let cancelled = cancellation(of: inner) {
        // Cancelled while re-acquiring: remember it and try again.
        raising = cancelled
      } else {
        finish()  // the lock is ours again
        return
      }
      do {
        if let acquire = try condition.lock.acquireOperation() {
          wait(on: acquire)
          return
        }
      } catch {
        raising = error
      }
      finish()
    }

    private func finish() {
      if let raising {
        // A waiter that leaves with an error passes its notification on.
        condition.object?.notifyWaiters(1)
        completeThrowing(raising)
      } else {
        completeReturning()
      }
    }
  }

  private final class WaitFor: Operation {
    let condition: PrimitiveReference<Condition>
    let predicate: () throws -> Bool

    init(condition: Condition, predicate: @escaping () throws -> Bool, first: AnyFuture) {
      self.condition = PrimitiveReference(condition)
      self.predicate = predicate
      super.init(waitingOn: first)
    }

    override func advance(_ wait: AnyFuture) {
      do {
        try wait.checkResult()
        if try predicate() {
          // The predicate may have cancelled the task (in CPython it runs in
          // the task, so the request is _must_cancel): do not lose it. When
          // it does not hold, wait(on:) hands the request to the next wait().
          if let cancelled = cancellation(of: wait) { return completeThrowing(cancelled) }
          completeReturning()
        } else if let condition = condition.object {
          self.wait(on: try condition.waitOperation())
        } else {
          completeOrphaned()
        }
      } catch {
        completeThrowing(error)
      }
    }
  }
}

// MARK: Semaphore

/// asyncio.Semaphore (and BoundedSemaphore, below).
public class Semaphore: LoopBound {
  public private(set) var value: Int
  public let bound: Int?
  /// Blocked acquire() operations, each its own waiter.
  var waiters = Deque<Operation>()

  /// A semaphore with `value` permits; `bounded` refuses releases above it
  /// (BoundedSemaphore).
  package init(value: Int = 1, bounded: Bool, loop: Loop? = nil) throws {
    guard value >= 0 else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "Semaphore initial value must be >= 0")
    }
    self.value = value
    bound = bounded ? value : nil
    super.init(loop: loop)
  }

  deinit {
    for waiter in waiters { waiter.waiterVanished() }
  }

  /// True when acquire() would wait.
  public var isLocked: Bool { value == 0 || waiters.contains { !$0.waiterIsCancelled } }

  package func acquireOperation() throws -> AnyFuture? {
    let loop = try self.loop()
    if !isLocked {
      // FIFO: others already waiting go first, even if value > 0.
      value -= 1
      return nil
    }
    let acquire = Acquire(semaphore: self, loop: loop)
    waiters.append(acquire)
    return acquire
  }

  public func acquire() async throws {
    if let operation = try acquireOperation() { try await operation.wait() }
  }

  public func release() throws {
    if let bound, value >= bound {
      throw RuntimeError(code: AIOS_ERELEASED.rawValue, "BoundedSemaphore released too many times")
    }
    value += 1
    wakeUpNext()
  }

  @discardableResult
  func wakeUpNext() -> Bool {
    for waiter in waiters where !waiter.waiterIsDone {
      value -= 1
      waiter.wakeWaiter()
      return true
    }
    return false
  }

  private final class Acquire: Operation {
    let semaphore: PrimitiveReference<Semaphore>
    init(semaphore: Semaphore, loop: Loop) {
      self.semaphore = PrimitiveReference(semaphore)
      super.init(loop: loop)
      waitAsWaiter()
    }
    override func advance(_: AnyFuture) {
      guard let semaphore = semaphore.object else { return completeOrphaned() }
      semaphore.waiters.remove(self)
      let cancelled = cancellation(of: self)
      if cancelled != nil && waiterIsDone && !waiterIsCancelled {
        // Woken, but not acquiring after all: undo the wake-up's count.
        semaphore.value += 1
      }
      leaveAsWaiter()
      // Waiters that came meanwhile had to wait (FIFO): wake all allowed.
      while semaphore.value > 0 && semaphore.wakeUpNext() {}
      if let cancelled { completeThrowing(cancelled) } else { completeReturning() }
    }
  }

  /// A semaphore with `value` permits (at least 0).
  public convenience init(value: Int = 1, loop: Loop? = nil) throws {
    try self.init(value: value, bounded: false, loop: loop)
  }
}

/// asyncio.BoundedSemaphore: a release above the initial value is an error.
public final class BoundedSemaphore: Semaphore {
  public convenience init(value: Int = 1, loop: Loop? = nil) throws {
    try self.init(value: value, bounded: true, loop: loop)
  }
}

// MARK: Barrier

/// asyncio.Barrier: `parties` tasks wait until all have arrived.
public final class Barrier: LoopBound {
  enum State { case filling, draining, resetting, broken }

  public let parties: Int
  var state = State.filling
  var count = 0
  let condition: Condition

  public init(parties: Int, loop: Loop? = nil) throws {
    guard parties >= 1 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "parties must be > 0") }
    self.parties = parties
    condition = Condition(loop: loop)
    super.init(loop: loop)
  }

  /// Tasks waiting while the barrier fills.
  public var waiting: Int { state == .filling ? count : 0 }
  public var isBroken: Bool { state == .broken }

  /// wait(): the result is the arrival index, 0 ... parties-1.
  package func waitOperation() throws -> AnyFuture {
    Wait(barrier: self, loop: try loop())
  }

  public func wait() async throws -> Int {
    let operation = try waitOperation()
    try await operation.wait()
    return (operation as! Wait).index
  }

  /// reset(): waiting tasks get BrokenBarrierError; the barrier fills anew.
  package func resetOperation() throws -> AnyFuture {
    Locked(barrier: self, loop: try loop()) { barrier in
      if barrier.count > 0 {
        barrier.state = .resetting
      } else {
        barrier.state = .filling
      }
    }
  }

  public func reset() async throws { try await resetOperation().wait() }

  /// abort(): the barrier is broken for good.
  package func abortOperation() throws -> AnyFuture {
    Locked(barrier: self, loop: try loop()) { $0.state = .broken }
  }

  public func abort() async throws { try await abortOperation().wait() }

  /// `async with cond: change(self); cond.notify_all()`.
  private final class Locked: Operation {
    let barrier: PrimitiveReference<Barrier>
    let change: (Barrier) -> Void

    init(barrier: Barrier, loop: Loop, change: @escaping (Barrier) -> Void) {
      self.barrier = PrimitiveReference(barrier)
      self.change = change
      super.init(loop: loop)
      do {
        if let acquire = try barrier.condition.acquireOperation() {
          wait(on: acquire)
        } else {
          run()
        }
      } catch {
        completeThrowing(error)
      }
    }

    override func advance(_ acquire: AnyFuture) {
      if let cancelled = cancellation(of: acquire) { completeThrowing(cancelled) } else { run() }
    }

    private func run() {
      guard let barrier = barrier.object else { return completeOrphaned() }
      change(barrier)
      barrier.condition.notifyWaiters(barrier.condition.waiters.count)
      try? barrier.condition.release()
      completeReturning()
    }
  }

  /// Barrier.wait, phase by phase: take the lock; block while the barrier
  /// drains or resets; arrive; the last arrival releases everyone, the
  /// others wait for it; leave; release the lock.
  final class Wait: Operation {
    enum Phase { case acquiring, blocking, waiting }
    let reference: PrimitiveReference<Barrier>
    /// The barrier, once `advance` has checked that it lives.
    var barrier: Barrier { reference.object! }
    var phase = Phase.acquiring
    var index = -1

    init(barrier: Barrier, loop: Loop) {
      reference = PrimitiveReference(barrier)
      super.init(loop: loop)
      do {
        if let acquire = try barrier.condition.acquireOperation() {
          wait(on: acquire)
        } else {
          block()
        }
      } catch {
        completeThrowing(error)
      }
    }

    override func advance(_ inner: AnyFuture) {
      guard reference.object != nil else { return completeOrphaned() }
      switch phase {
      case .acquiring:
        if let cancelled = cancellation(of: inner) { completeThrowing(cancelled) } else { block() }
      case .blocking:
        if let error = failure(of: inner) { leave(throwing: error, arrived: false) } else { arrive() }
      case .waiting:
        if let error = failure(of: inner) {
          leave(throwing: error, arrived: true)
        } else if barrier.state == .broken || barrier.state == .resetting {
          leave(throwing: BrokenBarrierError("Abort or reset of barrier"), arrived: true)
        } else {
          leave(throwing: nil, arrived: true)
        }
      }
    }

    private func failure(of inner: AnyFuture) -> (any Error)? {
      if let cancelled = cancellation(of: inner) { return cancelled }
      do { try inner.checkResult() } catch { return error }
      return nil
    }

    /// _block: wait while the barrier drains or resets.
    private func block() {
      phase = .blocking
      let barrier = self.barrier
      do {
        // The predicates live in the barrier's own condition: unowned, or
        // they would keep the barrier alive.
        if let waiting = try barrier.condition.waitForOperation({ [unowned(unsafe) barrier] in
          barrier.state != .draining && barrier.state != .resetting
        }) {
          wait(on: waiting)
          return
        }
      } catch {
        leave(throwing: error, arrived: false)
        return
      }
      arrive()
    }

    private func arrive() {
      if barrier.state == .broken {
        leave(throwing: BrokenBarrierError("Barrier aborted"), arrived: false)
        return
      }
      index = barrier.count
      barrier.count += 1
      if index + 1 == barrier.parties {
        // The last to arrive releases the others.
        barrier.state = .draining
        barrier.condition.notifyWaiters(barrier.condition.waiters.count)
        leave(throwing: nil, arrived: true)
        return
      }
      phase = .waiting
      let barrier = self.barrier
      do {
        if let waiting = try barrier.condition.waitForOperation({ [unowned(unsafe) barrier] in
          barrier.state != .filling
        }) {
          wait(on: waiting)
          return
        }
      } catch {
        leave(throwing: error, arrived: true)
        return
      }
      advance(AnyFuture.done(on: loop))
    }

    /// The `finally` blocks: leave the barrier (if arrived), release the lock.
    private func leave(throwing error: (any Error)?, arrived: Bool) {
      if arrived {
        barrier.count -= 1
        if barrier.count == 0 {
          if barrier.state == .resetting || barrier.state == .draining { barrier.state = .filling }
          barrier.condition.notifyWaiters(barrier.condition.waiters.count)
        }
      }
      try? barrier.condition.release()
      if let error {
        completeThrowing(error)
      } else {
        storeCResult(UnsafeMutableRawPointer(bitPattern: index), destructor: nil)  // for C: the index
        completeReturning()
      }
    }
  }
}
