// asyncio's Task: a future driven by a body, stepped by the loop.
//
// TaskBase holds what every task shares, asyncio's Task.__step and cancel:
// cancellation requests, the future being awaited, the current task, and how
// a body's return or error finishes the task. Two bodies drive it: a C step
// function (StepTask) and a Swift async closure (AioTask).
internal import CAioSwift
import Glibc
import Synchronization

private let taskCounter = Atomic<Int>(0)

public class TaskBase: AnyFuture {
  /// What few tasks have, kept aside so a pending task stays small: a name
  /// given by the user, its C string, a pending cancellation's message.
  private final class Extras {
    var name: String?
    var cString: UnsafeMutablePointer<CChar>?
    var cancelMessage: String?
    /// A binding's context for the task (what contextvars are to Python's).
    var context: UnsafeMutableRawPointer?
    var contextDestructor: CDestructor?
    deinit {
      cString.map { free($0) }
      contextDestructor?(context)
    }
  }
  private var extras: Extras?
  private let number: Int
  var cancelsRequested: Int32 = 0
  var mustCancel = false
  var started = false
  /// A StepTask's step function is running.
  @usableFromInline var stepping = false
  /// Flags, as bits of one byte so that a pending task stays small: the C
  /// references a StepTask holds (1, 2), a cancel() under way (4).
  private var heldHandles: UInt8 = 0
  /// The C layer holds a reference to the handle of the future a StepTask
  /// awaits (`waiter`), so that the next step gets the same handle back.
  package var holdsAwaitedHandle: Bool {
    get { heldHandles & 1 != 0 }
    set { heldHandles = newValue ? heldHandles | 1 : heldHandles & ~1 }
  }
  /// A StepTask holds one C reference to its own handle (foreignHandle)
  /// while it is pending: its steps then get that handle without a
  /// reference taken each time.
  package var holdsOwnHandle: Bool {
    get { heldHandles & 2 != 0 }
    set { heldHandles = newValue ? heldHandles | 2 : heldHandles & ~2 }
  }
  /// cancel() is running on this task: a cancel that reaches the task again
  /// through what it awaits has found a cycle.
  private var cancelUnderWay: Bool {
    get { heldHandles & 4 != 0 }
    set { heldHandles = newValue ? heldHandles | 4 : heldHandles & ~4 }
  }
  /// The future the task awaits (asyncio's _fut_waiter).
  var waiter: AnyFuture?
  /// Tasks, Swift's too, may be seen by C (current_task, all_tasks).
  private var storedHandle: UInt64 = 0
  package final override var foreignHandle: UInt64 {
    get { storedHandle }
    set { storedHandle = newValue }
  }
  // The loop's list of pending tasks.
  var nextTask: TaskBase?
  var previousTask: TaskBase? {
    get { previousTaskReference?.takeUnretainedValue() }
    set { previousTaskReference = newValue.map { Unmanaged.passUnretained($0) } }
  }
  // Unowned, as an Unmanaged: an unowned(unsafe) read retains atomically.
  private var previousTaskReference: Unmanaged<TaskBase>?

  init(loop: Loop, name: String?) {
    number = taskCounter.add(1, ordering: .relaxed).newValue
    super.init(taskOn: loop)
    if let name { withExtras { $0.name = name } }
    nextTask = loop.tasksHead
    loop.tasksHead?.previousTask = self
    loop.tasksHead = self
  }

  /// Schedules the first step, or runs it now for an eager task on a running
  /// loop (asyncio 3.12's eager_start).
  func start(eager: Bool) {
    if eager && loop.isRunning {
      step(outcome: nil)
    } else {
      loop.schedule(.step(self))
    }
  }

  override func didFinish() {
    // Moved, not copied: unlinking takes no retain.
    let next = nextTask.take()
    next?.previousTask = previousTask
    if let previousTask {
      previousTask.nextTask = next
    } else if loop.tasksHead === self {
      loop.tasksHead = next
    }
    previousTask = nil
  }

  public override var isTask: Bool { true }
  override var outcomeIsSetFromOutside: Bool { false }
  /// True for a StepTask (a virtual call, cheaper than a dynamic cast).
  package var isStepTask: Bool { false }

  private func withExtras<R>(_ body: (Extras) -> R) -> R {
    if extras == nil { extras = Extras() }
    return body(extras!)
  }

  public var name: String {
    get { extras?.name ?? "Task-\(number)" }
    set {
      withExtras {
        $0.name = newValue
        $0.cString.map { free($0) }
        $0.cString = nil
      }
    }
  }

  /// The name as a C string, valid until the task is renamed or freed.
  package var nameCString: UnsafePointer<CChar> {
    withExtras { extras in
      if extras.cString == nil { extras.cString = strdup(name) }
      return UnsafePointer(extras.cString!)
    }
  }

  /// The context pointer given when the task was made through the C ABI
  /// (freed with the task by its destructor).
  package var context: UnsafeMutableRawPointer? { extras?.context }

  package func setContext(_ context: UnsafeMutableRawPointer, destructor: CDestructor?) {
    withExtras {
      $0.contextDestructor?($0.context)
      $0.context = context
      $0.contextDestructor = destructor
    }
  }

  /// The message of a requested cancellation not yet delivered.
  var cancelMessage: String? {
    get { extras?.cancelMessage }
    set {
      if newValue != nil || extras != nil { withExtras { $0.cancelMessage = newValue } }
    }
  }

  /// asyncio's Task.cancelling(): pending cancellation requests.
  public var cancelling: Int { Int(cancelsRequested) }

  /// asyncio's Task.uncancel(): takes back one request; returns those left.
  @discardableResult
  public func uncancel() -> Int {
    if cancelsRequested > 0 {
      cancelsRequested -= 1
      if cancelsRequested == 0 { mustCancel = false }
    }
    return Int(cancelsRequested)
  }

  /// asyncio's Task.cancel: a request, delivered as a CancelledError at the
  /// task's current await (by cancelling the awaited future) or next step.
  /// Unlike Future.cancel, the task may catch it and go on.
  ///
  /// A task whose awaits lead back to itself (it awaits a gather of its own
  /// future, or two tasks await each other) would cancel itself for ever, as
  /// CPython's does until its stack runs out. Here the cancel that comes
  /// back is refused, and the task whose waiter refused it stops waiting and
  /// takes the cancellation at its next step: the cycle unwinds, every task
  /// in it ends cancelled.
  @discardableResult
  public override func cancel(message: String? = nil) -> Bool {
    guard state == .pending else { return false }
    if cancelUnderWay {
      loop.cancelCycleFound = true
      return false
    }
    if cancelsRequested < Int32.max { cancelsRequested += 1 }
    if let waiter {
      cancelUnderWay = true
      let outer = loop.cancelCycleFound
      loop.cancelCycleFound = false
      let cancelled = waiter.cancel(message: message)
      let cycle = loop.cancelCycleFound
      loop.cancelCycleFound = outer
      cancelUnderWay = false
      if cancelled { return true }
      if cycle && !waiter.isDone {
        stopWaiting(on: waiter)
        mustCancel = true
        cancelMessage = message
        loop.schedule(.step(self))
        return true
      }
    }
    mustCancel = true
    cancelMessage = message
    return true
  }

  /// Leaves the future the task awaits: it will not wake the task.
  func stopWaiting(on future: AnyFuture) {
    future.removeWakeup(self)
    waiter = nil
  }

  // MARK: Stepping (asyncio's __step and __wakeup)

  /// Runs one step; `outcome` is the future last awaited, nil at the start or
  /// after a bare yield.
  final func step(outcome: AnyFuture?) {
    guard state == .pending else { return }
    var cancellation: CancelledError?
    if mustCancel {
      mustCancel = false
      // A cancelled await already carries the first request's message, as
      // the CancelledError it raises does in CPython.
      if !(outcome?.error is CancelledError) { cancellation = CancelledError(cancelMessage) }
    }
    let previous = loop.currentTaskAddress
    loop.currentTaskAddress = Unmanaged.passUnretained(self).toOpaque()
    advance(outcome: outcome, cancellation: cancellation)
    loop.currentTaskAddress = previous
  }

  final func wakeup(from future: AnyFuture) {
    waiter = nil
    step(outcome: future)
  }

  /// Runs the body up to its next await or its end.
  func advance(outcome: AnyFuture?, cancellation: CancelledError?) {
    fatalError("TaskBase.advance is abstract")
  }

  /// The body awaits `future`: wake the task when it is done.
  final func suspend(on future: AnyFuture) {
    waiter = future
    future.addDoneCallback(.wakeup(self))
    if mustCancel, future.cancel(message: cancelMessage) { mustCancel = false }
  }

  /// The body returned. Returns false when the task must end cancelled
  /// instead (a cancel() that arrived while the body ran its last step).
  final func bodyReturned() -> Bool {
    if mustCancel {
      mustCancel = false
      _ = cancelFuture(message: cancelMessage)
      return false
    }
    return true
  }

  /// The body threw: a CancelledError cancels the task (so does Swift's
  /// CancellationError, from a Swift await the cancellation reached), and
  /// anything else fails it.
  final func bodyThrew(_ error: any Error) {
    if let cancelled = error as? CancelledError {
      mustCancel = false
      _ = cancelFuture(message: cancelled.message.isEmpty ? nil : cancelled.message)
    } else if error is CancellationError {
      mustCancel = false
      _ = cancelFuture(message: cancelMessage)
    } else {
      self.error = error
      finish(.finished)
    }
  }

  override var typeName: String { "Task" }

  public override var description: String {
    String(super.description.dropLast()) + " name='\(name)'>"
  }
}

/// A task driven by a C step function (see aios_step_fn in the header). The
/// loop's ForeignInterface calls the function, and the step reports what it
/// did through `loop.stepOutcome`.
package final class StepTask: TaskBase {
  public enum Outcome {
    case await(AnyFuture?)
    case returned(UnsafeMutableRawPointer?, CDestructor?)
    case failed(any Error)
  }

  public let stepFunction: UnsafeRawPointer
  public let argument: UnsafeMutableRawPointer?
  private let argumentDestructor: CDestructor?
  /// The C result the step returned (its handle is TaskBase's).
  private var kept = KeptCResult()
  override var cValue: UnsafeMutableRawPointer? {
    get { kept.value }
    set { kept.value = newValue }
  }
  override var cDestructor: CDestructor? {
    get { kept.destructor }
    set { kept.destructor = newValue }
  }
  override var keepsCResult: Bool { true }

  /// Drops the reference of holdsOwnHandle, once the task is done or its
  /// loop let go of it.
  public func releaseOwnHandle() {
    guard holdsOwnHandle else { return }
    holdsOwnHandle = false
    loop.foreign?.releaseHandle(foreignHandle)
  }

  override func didFinish() {
    super.didFinish()
    releaseOwnHandle()
  }

  override func stopWaiting(on future: AnyFuture) {
    releaseAwaitedHandle(of: future)
    super.stopWaiting(on: future)
  }

  /// Drops the reference to the awaited future's handle, if one is held.
  public func releaseAwaitedHandle(of future: AnyFuture?) {
    guard holdsAwaitedHandle else { return }
    holdsAwaitedHandle = false
    if let future { loop.foreign?.releaseHandle(future.foreignHandle) }
  }

  init(loop: Loop, function: UnsafeRawPointer, argument: UnsafeMutableRawPointer?,
       destructor: CDestructor?, name: String?) {
    stepFunction = function
    self.argument = argument
    argumentDestructor = destructor
    super.init(loop: loop, name: name)
  }

  package override var isStepTask: Bool { true }

  /// The call that made the task failed: it leaves the loop's list and
  /// never steps, and the caller keeps its argument.
  func abandon() {
    argumentAbandoned = true
    didFinish()
  }
  private var argumentAbandoned = false

  deinit {
    releaseAwaitedHandle(of: waiter)
    if !argumentAbandoned { argumentDestructor?(argument) }
    kept.free()
  }

  /// True while this task's step function runs (aios_task_await and friends
  /// are valid only then).
  @inlinable public var isStepping: Bool {
    stepping && loop.currentTaskAddress == Unmanaged.passUnretained(self).toOpaque()
  }

  override func advance(outcome awaited: AnyFuture?, cancellation: CancelledError?) {
    var awaited = awaited
    if !started {
      started = true
      // A task cancelled before its first step never steps.
      if let cancellation {
        bodyThrew(cancellation)
        return
      }
    } else if let cancellation {
      releaseAwaitedHandle(of: awaited)
      let cancelled = RawFuture(loop: loop)
      _ = cancelled.cancelFuture(message: cancellation.message.isEmpty ? nil : cancellation.message)
      awaited = cancelled
    }
    // The outcome is the loop's, not every task's (pending tasks stay small);
    // an eager task's step may run inside this one, so it is set aside.
    let outer = loop.stepOutcome.take()
    stepping = true
    let status = loop.foreign?.step(self, awaited: awaited) ?? AIOS_ENOTIMPL.rawValue
    stepping = false
    let reported = loop.stepOutcome.take()
    loop.stepOutcome = outer
    switch (status, reported) {
    case (Int32(AIOS_STEP_AWAIT), .await(let future)?):
      if let future { suspend(on: future) } else { loop.schedule(.step(self)) }
    case (Int32(AIOS_STEP_DONE), .returned(let value, let destructor)?):
      if bodyReturned() {
        cValue = value
        cDestructor = destructor
        finish(.finished)
      } else {
        destructor?(value)
      }
    case (Int32(AIOS_STEP_DONE), .failed(let error)?):
      bodyThrew(error)
    default:
      if case .returned(let value, let destructor)? = reported { destructor?(value) }
      bodyThrew(status < 0
        ? makeError(code: status, message: nil)
        : RuntimeError(code: AIOS_ESTEP.rawValue,
                       "step function returned \(status) without a matching aios_task_* call"))
    }
  }
}

/// What a Swift task needs whatever its result type: its first job, its
/// continuation while it awaits.
public class SwiftTaskBase: TaskBase {
  var pendingJob: UnownedJob?
  var continuation: UnsafeContinuation<Void, any Error>?
  /// The Swift task that runs the body, while it does (its address, from
  /// the runtime: compared on every await, where withUnsafeCurrentTask
  /// would cost more than the rest of the await). Its awaits on the loop
  /// are the task's steps; any other Swift task on the loop (a child of
  /// `async let` or of a task group, a Task preferring the loop as its
  /// executor) waits on its own (waitOnItsOwn). It is also what an asyncio
  /// cancellation cancels when it finds the body waiting on a Swift await
  /// that is not the library's.
  ///
  /// An await finds its task without a task-local: a task-local bound in
  /// every body would be copied into every Swift task a body creates,
  /// which costs each pending task a 1 KB slab of the runtime's allocator
  /// (Swift copies task-locals into a new task's own allocator). A body
  /// runs in its task's step, where the loop knows the task
  /// (currentTaskAddress), except after an await that is not the
  /// library's: its Swift task is then resumed by the executor, outside
  /// any step, so from its first such await the loop keeps it in
  /// bodiesAwayFromSteps.
  var bodyTaskAddress: UnsafeRawPointer?
  /// Listed in the loop's bodiesAwayFromSteps.
  private var listedAwayFromSteps = false

  /// True when the calling Swift task is the one running this task's body.
  var isRunningItsBody: Bool {
    guard let bodyTaskAddress else { return false }
    return currentSwiftTaskAddress() == bodyTaskAddress
  }

  /// asyncio's cancel, reaching Swift's own awaits too: a body suspended in
  /// an await that is not the library's (Task.sleep, an AsyncStream, async
  /// let, a task group) has its Swift task cancelled, so that await ends
  /// (with CancellationError, which cancels the task if it escapes). The
  /// request also stays pending for the body's next await on the loop, as
  /// asyncio delivers it at the current or next await. Swift's cancellation
  /// is sticky: Task.isCancelled stays true in the body from then on.
  @discardableResult
  public override func cancel(message: String? = nil) -> Bool {
    guard super.cancel(message: message) else { return false }
    if started, waiter == nil, continuation == nil, !isRunningItsBody, let bodyTaskAddress {
      cancelSwiftTask(bodyTaskAddress)
    }
    return true
  }

  override func advance(outcome: AnyFuture?, cancellation: CancelledError?) {
    if !started {
      started = true
      // Cancelled before it started: the body never runs, but the Swift task
      // still runs to its (empty) end so nothing of it is left.
      if let cancellation { bodyThrew(cancellation) }
      runPendingJob()
      return
    }
    guard let continuation else { return }
    self.continuation = nil
    resume(continuation, throwing: cancellation)
  }

  /// Resumes the body and runs it up to its next suspension, in this step:
  /// resume() hands the task's next job to the loop's executor at once, and
  /// capturing it lets it run here, as asyncio's __wakeup runs __step.
  private func resume(_ continuation: UnsafeContinuation<Void, any Error>, throwing error: (any Error)?) {
    let outer = loop.capturingTask
    loop.capturingTask = self
    if let error {
      continuation.resume(throwing: error)
    } else {
      continuation.resume()
    }
    loop.capturingTask = outer
    runPendingJob()
  }

  /// After the body ran in a step: one that stopped at an await that is
  /// not the library's is resumed outside the steps from now on.
  private func noteWhereTheBodyStopped() {
    guard continuation == nil, let bodyTaskAddress, !listedAwayFromSteps else { return }
    listedAwayFromSteps = true
    loop.bodiesAwayFromSteps[bodyTaskAddress] = self
  }

  /// The body ended.
  final func bodyEnded() {
    if listedAwayFromSteps, let bodyTaskAddress {
      listedAwayFromSteps = false
      loop.bodiesAwayFromSteps[bodyTaskAddress] = nil
    }
    bodyTaskAddress = nil
  }

  /// See Loop.unwindSwiftTasks: resumes the suspended body with a
  /// CancelledError; false if it was not suspended at one of our awaits.
  func unwind() -> Bool {
    if !started, pendingJob != nil {
      // Never started: it ends cancelled, and its Swift task runs to its
      // (empty) end.
      cancel(message: "Event loop is closed")
      step(outcome: nil)
      return true
    }
    guard let continuation else { return false }
    self.continuation = nil
    if let waiter { stopWaiting(on: waiter) }
    // As in a step: an await the body makes then is its own.
    let previous = loop.currentTaskAddress
    loop.currentTaskAddress = Unmanaged.passUnretained(self).toOpaque()
    resume(continuation, throwing: CancelledError("Event loop is closed"))
    loop.currentTaskAddress = previous
    return true
  }

  private func runPendingJob() {
    guard let job = pendingJob else { return }
    pendingJob = nil
    job.runSynchronously(on: loop.asUnownedTaskExecutor())
    noteWhereTheBodyStopped()
  }

  /// Suspends the body until the loop steps it again (after `future` is
  /// done, or on the next iteration for a bare yield).
  final func suspendBody(on future: AnyFuture?) async throws {
    try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
      self.continuation = continuation
      if let future { suspend(on: future) } else { loop.schedule(.step(self)) }
    }
  }
}

/// A task whose body is a Swift async closure running on the loop's thread.
public final class AioTask<T>: SwiftTaskBase {
  private var body: (@isolated(any) () async throws -> T)?
  private var storedValue: T?

  init(loop: Loop, name: String?, body: @isolated(any) @escaping () async throws -> T) {
    self.body = body
    super.init(loop: loop, name: name)
    let outer = loop.capturingTask
    loop.capturingTask = self
    Swift.Task(executorPreference: loop) { await self.runBody() }
    loop.capturingTask = outer
  }

  private func runBody() async {
    guard let body, state == .pending else {
      body = nil
      return
    }
    self.body = nil
    bodyTaskAddress = currentSwiftTaskAddress()
    defer { bodyEnded() }
    do {
      let value = try await body()
      if bodyReturned() {
        storedValue = value
        finish(.finished)
      }
    } catch {
      bodyThrew(error)
    }
  }

  /// asyncio's result().
  public func result() throws -> T {
    try checkResult()
    return storedValue!
  }

  /// Awaits the task from another task of the loop, then returns its result.
  public var value: T {
    get async throws {
      if !isDone { try await suspendCurrentTask(until: self) }
      return try result()
    }
  }
}

/// A task's body must run on the loop. One isolated to an actor (a closure
/// written in @MainActor code, as Swift 6's top-level code is) would send
/// its jobs to that actor's executor, which nothing runs while the loop
/// runs on this thread: refused at once rather than left hanging.
func checkRunsOnTheLoop(_ isolation: (any Actor)?) throws {
  guard let isolation else { return }
  throw RuntimeError(code: AIOS_EINVAL.rawValue,
    "a task's body must not be isolated to \(type(of: isolation)): its jobs would wait for "
      + "that actor while the loop runs. Make the closure @Sendable, or create the task "
      + "from nonisolated code.")
}

extension Loop {
  /// asyncio's create_task: a task running `body` on this loop. With `eager`
  /// on a running loop, the body runs up to its first suspension at once.
  /// `body` runs on the loop: a body isolated to an actor is refused
  /// (checkRunsOnTheLoop).
  @discardableResult
  public func createTask<T>(name: String? = nil, eager: Bool = false,
                            _ body: @isolated(any) @escaping () async throws -> T) throws -> AioTask<T> {
    try checkUsable()
    try checkRunsOnTheLoop(body.isolation)
    let task = AioTask(loop: self, name: name, body: body)
    task.start(eager: eager)
    return task
  }

  /// A task driven by a C step function, which `foreign` calls; `prepare`
  /// runs before its first step can (an eager one runs at once).
  package func createStepTask(function: UnsafeRawPointer, argument: UnsafeMutableRawPointer?,
                             destructor: CDestructor?, name: String?, eager: Bool,
                             foreign: any ForeignInterface,
                             prepare: (StepTask) throws -> Void = { _ in }) throws -> StepTask {
    try checkUsable()
    useForeignInterface(foreign)
    let task = StepTask(loop: self, function: function, argument: argument,
                        destructor: destructor, name: name)
    do {
      try prepare(task)
    } catch {
      task.abandon()
      throw error
    }
    task.start(eager: eager)
    return task
  }

  /// asyncio's all_tasks: the loop's tasks that are not done.
  public func allTasks() -> [TaskBase] {
    var tasks: [TaskBase] = []
    var next = tasksHead
    while let task = next {
      tasks.append(task)
      next = task.nextTask
    }
    return tasks
  }

  /// Swift tasks suspended at one of the loop's awaits when it closes are
  /// resumed with a CancelledError, as CPython closes a coroutine it
  /// collects (GeneratorExit at its await): their frames unwind and are
  /// freed. A frame left suspended would keep its task, and what it holds,
  /// for ever. A body that catches the error and awaits again gets it
  /// again, a few times, then is left.
  func unwindSwiftTasks() {
    for _ in 0..<4 {
      var resumed = false
      var next = tasksHead
      while let task = next {
        next = task.nextTask
        if !task.isStepTask, unsafeDowncast(task, to: SwiftTaskBase.self).unwind() { resumed = true }
      }
      if !resumed { return }
    }
  }

  /// Lets go of the list of pending tasks one by one (a long chain released
  /// at once would recurse through every task's deinit). A pending task and
  /// the future it awaits hold each other, and on a closed loop neither can
  /// finish: the task lets go of the future, so both are freed once their
  /// users let go of them (asyncio leaves such tasks to the collector).
  func releaseTaskList() {
    var next = tasksHead
    tasksHead = nil
    while let task = next {
      next = task.nextTask
      task.nextTask = nil
      task.previousTask = nil
      if let waiter = task.waiter { task.stopWaiting(on: waiter) }
      if task.isStepTask { unsafeDowncast(task, to: StepTask.self).releaseOwnHandle() }
    }
  }

  /// A future that gets the C result `value` after `delay` seconds (now, for
  /// delay <= 0); cancelling it cancels its timer.
  package func sleepFuture(_ delay: Double, value: UnsafeMutableRawPointer? = nil,
                          destructor: CDestructor? = nil) throws -> AnyFuture {
    try checkUsable()
    try checkTime(delay)
    if delay <= 0 { return AnyFuture.done(on: self, value: value, destructor: destructor) }
    // The future owns the value from the start, so it is freed exactly once
    // whether the sleep ends, is cancelled, or is dropped unfinished.
    let future = RawFuture(loop: self)
    future.cValue = value
    future.cDestructor = destructor
    let timer = try callLater(delay) { if !future.isDone { future.finish(.finished) } }
    future.addDoneCallback { _ in timer.cancel() }
    return future
  }
}

/// The address of the Swift task running now (borrowed: only compared).
@inline(__always)
private func currentSwiftTaskAddress() -> UnsafeRawPointer? { UnsafeRawPointer(aiosi_current_swift_task()) }

/// Task.cancel() for a Swift task known by its address, which must be
/// alive (a body's, while it runs).
@inline(__always)
private func cancelSwiftTask(_ task: UnsafeRawPointer) { aiosi_cancel_swift_task(UnsafeMutableRawPointer(mutating: task)) }

extension Loop {
  /// The task whose body the calling Swift task runs, if it is one.
  @inline(__always)
  func taskOfThisBody() -> SwiftTaskBase? {
    let swiftTask = currentSwiftTaskAddress()
    // In a step (an await resumed by the library, a body's start).
    if let address = currentTaskAddress {
      let task = Unmanaged<TaskBase>.fromOpaque(address).takeUnretainedValue()
      if !task.isStepTask {
        let body = unsafeDowncast(task, to: SwiftTaskBase.self)
        if body.bodyTaskAddress == swiftTask { return body }
      }
    }
    guard !bodiesAwayFromSteps.isEmpty, let swiftTask else { return nil }
    return bodiesAwayFromSteps[swiftTask]
  }
}

/// The loop an await of the library is made on: the one running on this
/// thread, whose executor runs every Swift task that may await on it.
func loopOfThisAwait() throws -> Loop {
  guard let loop = runningLoopOnThisThread() else {
    throw RuntimeError(code: AIOS_ENOLOOP.rawValue,
      "not inside a task of an aio-swift loop, nor on its thread: a Task {} made in a task of "
        + "the loop runs elsewhere; use loop.createTask { } for a task of the loop, or "
        + "Task(executorPreference: loop) { } for a Swift task on its thread")
  }
  return loop
}

/// Suspends the current task until `future` is done (asyncio's `await fut`).
func suspendCurrentTask(until future: AnyFuture) async throws {
  let loop = try loopOfThisAwait()
  guard loop === future.loop else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
  try await awaitOnTheLoop(loop, future)
}

/// `await fut` (nil: a bare yield) from the Swift task running now: a step
/// of the task whose body it is, else a wait of its own.
@inline(__always)
private func awaitOnTheLoop(_ loop: Loop, _ future: AnyFuture?) async throws {
  if let task = loop.taskOfThisBody() {
    guard task !== future else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "a task cannot await itself")
    }
    try await task.suspendBody(on: future)
  } else {
    try await waitOnItsOwn(future, loop: loop)
  }
}

/// A Swift task on the loop's thread that is not a task's body (a child of
/// `async let` or of a task group, a Task preferring the loop) waits on a
/// future by a done callback of its own, so that it never touches the
/// task's one continuation. Swift's cancellation of it cancels the future.
private func waitOnItsOwn(_ future: AnyFuture?, loop: Loop) async throws {
  let cancelled = Atomic<Bool>(false)
  try await withTaskCancellationHandler {
    try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
      if let future {
        future.addDoneCallback { _ in continuation.resume() }
      } else if (try? loop.callSoon { continuation.resume() }) == nil {
        continuation.resume(throwing: RuntimeError(code: AIOS_ECLOSED.rawValue))
      }
    }
  } onCancel: {
    // Any thread: the future is the loop's, so it is cancelled there.
    guard let future, !cancelled.exchange(true, ordering: .relaxed) else { return }
    let target = UnsafeSendable(future)
    _ = try? loop.callSoonThreadsafe { _ = target.value.cancel() }
  }
}

/// asyncio.sleep: suspends the current task for `delay` seconds; a delay of
/// 0 or less yields exactly one loop iteration.
public func sleep(_ delay: Double) async throws {
  let loop = try loopOfThisAwait()
  try checkTime(delay)
  if delay <= 0 {
    try await awaitOnTheLoop(loop, nil)
    return
  }
  let future = try loop.sleepFuture(delay)
  try await awaitOnTheLoop(loop, future)
  try future.checkResult()
}

/// asyncio.current_task: the task running on this thread's loop, if any.
public func currentTask() -> TaskBase? {
  guard let loop = runningLoopOnThisThread() else { return nil }
  return loop.currentTask ?? loop.taskOfThisBody()
}
