// The event loop: asyncio's BaseEventLoop scheduling on a libuv loop.
//
// One iteration is asyncio's _run_once: poll libuv (waiting only when
// nothing is ready, no timer is due and no stop was asked; when no I/O handle
// is active and something is ready, the poll system call is skipped), move
// the timers that are due to the ready queue, then run exactly the callbacks
// that were ready when the iteration began. Timers live in our own heap; one
// uv_timer wakes the poll for the earliest deadline.
internal import CAioSwift
internal import CLibUV
import Glibc
import HeapModule
import Synchronization

/// A C callback, called with its argument (aios_callback_fn).
package typealias CCallback = @convention(c) (UnsafeMutableRawPointer?) -> Void
/// aios_iteration_fn: (arg, waits).
package typealias CIterationCallback = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Void
/// Frees a C value (aios_destructor_fn).
package typealias CDestructor = @convention(c) (UnsafeMutableRawPointer?) -> Void

/// What the loop runs on an iteration. Task steps and future callbacks go in
/// without a Handle allocation; call_soon gets a Handle (it can be cancelled).
enum ReadyItem {
  case handle(Handle)
  case callback(AnyFuture, DoneCallback)
  case step(TaskBase)
  case job(UnownedJob)
  case call(CCallback, UnsafeMutableRawPointer?)
  case advance(Operation)
}

/// What an exception handler is told (asyncio's context dict).
public struct ExceptionContext {
  public var message: String
  public var error: (any Error)?
  public var future: AnyFuture?
  public var handle: Handle?
  public init(message: String, error: (any Error)? = nil, future: AnyFuture? = nil,
              handle: Handle? = nil) {
    self.message = message
    self.error = error
    self.future = future
    self.handle = handle
  }
}

public final class Loop: @unchecked Sendable {
  let uv: UnsafeMutablePointer<uv_loop_t>
  private let wakeTimer: UnsafeMutablePointer<uv_timer_t>
  private let wakeAsync: UnsafeMutablePointer<uv_async_t>
  private let ownerThread: pthread_t
  /// The owner thread's number (aiosi_thread_token).
  package let ownerToken: UInt32

  var ready = ReadyQueue()
  private var timers = Heap<TimerEntry>()
  private var timerSequence: UInt64 = 0
  private var cancelledTimerCount = 0
  fileprivate var armedDeadline = Double.infinity
  private let threadsafeQueue = ThreadLock<[UnsafeSendable<ReadyItem>]>([])
  /// Read by other threads: running, closed, threadsafe calls waiting.
  private let sharedFlags = aiosi_shared_flags_new(3)!
  private var threadsafePending: Bool {
    get { aiosi_flag_load(sharedFlags + 2) }
    set { aiosi_flag_store(sharedFlags + 2, newValue) }
  }
  /// How many C references to this loop the handles of call_soon_threadsafe
  /// hold (the C layer counts them).
  package let threadsafeKeepers = Atomic<Int>(0)

  public private(set) var isRunning: Bool {
    get { aiosi_flag_load(sharedFlags) }
    set { aiosi_flag_store(sharedFlags, newValue) }
  }
  private var stopping = false
  /// The loop's last user let go of it while it ran: it closes once it stops.
  private var closesWhenStopped = false
  public var isClosed: Bool { aiosi_flag_load(sharedFlags + 1) }

  /// The task whose step or job runs now. Unowned: a task is alive while
  /// it steps, and this changes at every step, so counting references to it
  /// would be waste.
  public var currentTask: TaskBase? {
    currentTaskAddress.map { Unmanaged<TaskBase>.fromOpaque($0).takeUnretainedValue() }
  }
  /// currentTask's address: setting and comparing it counts no reference.
  @usableFromInline var currentTaskAddress: UnsafeMutableRawPointer?
  /// Set while a task resumes its Swift continuation: the job that resume
  /// hands the executor runs at once instead of an iteration later.
  var capturingTask: SwiftTaskBase?
  /// What the running C step reported (aios_task_await, _return, _fail).
  package var stepOutcome: StepTask.Outcome?
  /// Swift tasks running bodies that are not resumed in their task's step
  /// (see SwiftTaskBase.bodyTaskAddress), by their address.
  var bodiesAwayFromSteps: [UnsafeRawPointer: SwiftTaskBase] = [:]
  /// Pending tasks, strongly held until done (asyncio's _all_tasks; holding
  /// them means a task nobody references still runs to its end).
  var tasksHead: TaskBase?
  var taskCounter = 0

  /// Set by a task's cancel() that came back to a task already cancelling
  /// (see TaskBase.cancel).
  var cancelCycleFound = false

  /// See doneFuture; released on close (it refers back to the loop).
  var sharedDoneFuture: AnyFuture?

  public var exceptionHandler: ((Loop, ExceptionContext) -> Void)?
  public var debug = false
  public var slowCallbackDuration = 0.1

  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  /// The memory every stream of this loop reads into before its protocol
  /// sees the bytes: libuv reads one stream at a time, so one is enough.
  package var readArena: UnsafeMutableRawBufferPointer {
    if let arena { return arena }
    let arena = UnsafeMutableRawBufferPointer.allocate(byteCount: readArenaSize, alignment: ioAlignment)
    self.arena = arena
    return arena
  }
  private var arena: UnsafeMutableRawBufferPointer?
  /// What the C layer keeps per loop (the batch of I/O events for
  /// bindings); let go of when the loop closes.
  package var bindingState: AnyObject?
  /// aios_loop_set_iteration_callback's: called as each iteration starts.
  package var iterationCallback: (CIterationCallback, UnsafeMutableRawPointer?)?
  /// The C layer's part, on a loop C uses (see ForeignInterface).
  package internal(set) var foreign: (any ForeignInterface)?
  /// Transports and servers with libuv handles open: they are aborted when
  /// the loop closes, before libuv's loop is freed.
  private var openIO: [ObjectIdentifier: (owner: Unmanaged<AnyObject>, abort: (AnyObject) -> Void)] = [:]
  /// add_reader's and add_writer's watchers, by descriptor.
  var descriptorWatchers: [Int32: DescriptorWatcher] = [:]
  /// add_signal_handler's watchers, one per signal.
  var signalWatchers: [Int32: SignalWatcher] = [:]
  /// The SIGCHLD watcher of this loop's children, while it has some.
  var childReaper: ChildReaper?
  /// `abort` is given the owner: a closure that captures nothing (most
  /// owners abort themselves) costs no allocation, once per connection.
  package func ioOpened(_ owner: AnyObject, abort: @escaping (AnyObject) -> Void) {
    // Opened while the loop closes (a callback of its last uv_run): nothing
    // will run its callbacks, so it is aborted at once.
    if isClosed {
      abort(owner)
      return
    }
    openIO[ObjectIdentifier(owner)] = (Unmanaged.passUnretained(owner), abort)
  }
  package func ioClosed(_ owner: AnyObject) { openIO[ObjectIdentifier(owner)] = nil }
  /// What has libuv handles open (each leaves with ioClosed before it goes).
  var openIOOwners: [AnyObject] { openIO.values.map { $0.owner.takeUnretainedValue() } }

  public init() throws {
    uv = .allocate(capacity: 1)
    wakeTimer = .allocate(capacity: 1)
    wakeAsync = .allocate(capacity: 1)
    ownerThread = pthread_self()
    ownerToken = aiosi_thread_token()
    var rc = uv_loop_init(uv)
    if rc == 0 {
      rc = uv_timer_init(uv, wakeTimer)
      if rc == 0 {
        rc = uv_async_init(uv, wakeAsync, loopAsyncCallback)
        if rc != 0 { uv_close(UnsafeMutableRawPointer(wakeTimer).assumingMemoryBound(to: uv_handle_t.self), nil) }
      }
      if rc != 0 {
        uv_run(uv, UV_RUN_DEFAULT)
        uv_loop_close(uv)
      }
    }
    if rc != 0 {
      uv.deallocate(); wakeTimer.deallocate(); wakeAsync.deallocate()
      aiosi_shared_flags_free(sharedFlags, 3)
      throw OSError(errno: -rc)
    }
    // The async handle stays referenced, so uv_run waits for work even when
    // there is none: asyncio's run_forever does.
    let me = Unmanaged.passUnretained(self).toOpaque()
    uv.pointee.data = me
    wakeAsync.pointee.data = me
    wakeTimer.pointee.data = me
    LiveObjects.loops.add(1, ordering: .relaxed)
    ignoreSIGPIPE
  }

  deinit {
    if !isClosed { closeResources() }
    ready.releaseStorage()
    arena?.deallocate()
    uv.deallocate(); wakeTimer.deallocate(); wakeAsync.deallocate()
    aiosi_shared_flags_free(sharedFlags, 3)
    LiveObjects.loops.subtract(1, ordering: .relaxed)
  }

  // MARK: Checks

  package var isOwnerThread: Bool { pthread_equal(ownerThread, pthread_self()) != 0 }

  /// Throws unless called on the loop's thread while it is open.
  @inline(__always)
  package func checkUsable() throws {
    guard isOwnerThread else { throw RuntimeError(code: AIOS_EWRONGTHREAD.rawValue) }
    guard !isClosed else { throw RuntimeError(code: AIOS_ECLOSED.rawValue) }
  }

  // MARK: Time

  /// Monotonic seconds (asyncio's loop.time()).
  public func time() -> Double { Double(uv_hrtime()) / 1e9 }

  // MARK: Scheduling

  /// asyncio's call_soon.
  @discardableResult
  public func callSoon(_ body: @escaping () throws -> Void) throws -> Handle {
    try checkUsable()
    let handle = Handle(loop: self, callback: .swift(body))
    keepThreadsafeOrder()
    ready.append(.handle(handle))
    return handle
  }

  /// call_soon for a C callback; `destructor` (if any) frees `arg` once.
  package func callSoon(c fn: CCallback, arg: UnsafeMutableRawPointer?,
                       destructor: CDestructor? = nil) throws -> Handle {
    try checkUsable()
    let handle = Handle(loop: self, callback: .foreign(fn, arg, destructor))
    keepThreadsafeOrder()
    ready.append(.handle(handle))
    return handle
  }

  /// call_soon for a C callback nobody will cancel: no Handle is made.
  package func callSoonUncancellable(c fn: CCallback, arg: UnsafeMutableRawPointer?) throws {
    try checkUsable()
    scheduleUncancellable(c: fn, arg: arg)
  }

  /// callSoonUncancellable for a caller already on the loop's thread, with
  /// the loop open (a transport's callback): no checks.
  @inline(__always)
  package func scheduleUncancellable(c fn: CCallback, arg: UnsafeMutableRawPointer?) {
    schedule(.call(fn, arg))
  }

  /// Schedules a future's done callback or a task step (internal, no checks).
  @inline(__always)
  func schedule(_ item: ReadyItem) {
    keepThreadsafeOrder()
    ready.append(item)
  }

  /// CPython has one ready queue, which call_soon_threadsafe appends to
  /// from any thread: a call another thread made earlier runs before one
  /// scheduled here now. Calls from other threads wait in their own queue
  /// until the loop's thread takes them, so it takes them first.
  @inline(__always)
  private func keepThreadsafeOrder() {
    if threadsafePending { drainThreadsafe() }
  }

  /// asyncio's call_soon_threadsafe: any thread; wakes the loop.
  @discardableResult
  public func callSoonThreadsafe(_ body: @escaping () throws -> Void) throws -> Handle {
    let handle = Handle(loop: self, callback: .swift(body))
    try enqueueThreadsafe(.handle(handle))
    return handle
  }

  /// call_soon_threadsafe for a C callback, with a Handle, on the loop's own
  /// thread (other threads use threadsafeHandle).
  package func callSoonThreadsafeOnOwnThread(c fn: CCallback, arg: UnsafeMutableRawPointer?,
                                            destructor: CDestructor?) throws -> Handle {
    let handle = Handle(loop: self, callback: .foreign(fn, arg, destructor))
    try enqueueThreadsafe(.handle(handle))
    return handle
  }

  /// call_soon_threadsafe for a C callback nobody will cancel: no Handle is made.
  package func callSoonThreadsafe(c fn: CCallback, arg: UnsafeMutableRawPointer?) throws {
    try enqueueThreadsafe(.call(fn, arg))
  }

  /// A Handle for call_soon_threadsafe, made on any thread and queued with
  /// enqueueThreadsafe(_:). It holds the loop through `keeper`, not by a
  /// reference of its own: the loop's reference count belongs to its thread.
  package func threadsafeHandle(c fn: CCallback, arg: UnsafeMutableRawPointer?, destructor: CDestructor?,
                               keeper: AnyObject) -> Handle {
    Handle(loopAddress: Unmanaged.passUnretained(self).toOpaque(), keeper: keeper,
           callback: .foreign(fn, arg, destructor))
  }

  /// Queues a handle made by threadsafeHandle, taking over the caller's
  /// reference (passRetained): every count change the calling thread makes
  /// on it happens before the queue's lock is released, and from then on the
  /// loop's thread alone counts references to it. On an error the caller
  /// keeps the reference.
  package func enqueueThreadsafe(_ handle: Unmanaged<Handle>) throws {
    guard addThreadsafe({ $0.append(UnsafeSendable(.handle(handle.takeRetainedValue()))) }) else {
      throw RuntimeError(code: AIOS_ECLOSED.rawValue)
    }
  }

  func enqueueThreadsafe(_ item: ReadyItem) throws {
    if isOwnerThread {
      // One queue, as CPython has: on the loop's own thread the call keeps
      // its place among call_soon's, after what other threads sent first.
      guard !isClosed else { throw RuntimeError(code: AIOS_ECLOSED.rawValue) }
      if threadsafePending { drainThreadsafe() }
      ready.append(item)
      return
    }
    guard addThreadsafe({ $0.append(UnsafeSendable(item)) }) else {
      throw RuntimeError(code: AIOS_ECLOSED.rawValue)
    }
  }

  /// Wakes the loop from any thread; a closed loop is left alone.
  public func wakeUp() { _ = addThreadsafe { _ in } }

  /// Runs `add` on the threadsafe queue and wakes the loop; false, without
  /// running it, once the loop is closed. Checked under the lock close()
  /// takes too, so nothing is queued on a loop that has let go of its async
  /// handle.
  private func addThreadsafe(_ add: (inout [UnsafeSendable<ReadyItem>]) -> Void) -> Bool {
    threadsafeQueue.withLock { queue in
      guard !isClosed else { return false }
      add(&queue)
      threadsafePending = true
      uv_async_send(wakeAsync)
      return true
    }
  }

  /// Releases the objects of this thread whose last C reference was dropped
  /// on another thread.
  @inline(__always)
  func drainDeferredReleases() {
    if aiosi_deferred_release_count() != 0 { foreign?.drainDeferredReleases() }
  }

  fileprivate func drainThreadsafe() {
    let items = threadsafeQueue.withLock { queue -> [UnsafeSendable<ReadyItem>] in
      let items = queue
      queue.removeAll()
      threadsafePending = false
      return items
    }
    for item in items { ready.append(item.value) }
  }

  /// Whether libuv has anything of its own to poll: handles or requests
  /// beyond the loop's async handle and wake-up timer, or handles closing.
  private var hasIOActivity: Bool {
    let own: UInt32 = uv_is_active(asHandle(wakeTimer)) != 0 ? 2 : 1
    return uv.pointee.active_handles > own || uv.pointee.active_reqs.count != 0
      || uv.pointee.closing_handles != nil
  }

  /// asyncio's call_later.
  @discardableResult
  public func callLater(_ delay: Double, _ body: @escaping () throws -> Void) throws -> TimerHandle {
    try callAt(time() + delay, body)
  }

  /// asyncio's call_at.
  @discardableResult
  public func callAt(_ when: Double, _ body: @escaping () throws -> Void) throws -> TimerHandle {
    try checkUsable()
    try checkTime(when)
    return addTimer(when: when, callback: .swift(body))
  }

  package func callAt(_ when: Double, c fn: CCallback, arg: UnsafeMutableRawPointer?,
                     destructor: CDestructor? = nil) throws -> TimerHandle {
    try checkUsable()
    try checkTime(when)
    return addTimer(when: when, callback: .foreign(fn, arg, destructor))
  }

  private func addTimer(when: Double, callback: Handle.Callback) -> TimerHandle {
    let handle = TimerHandle(loop: self, when: when, callback: callback)
    timerSequence &+= 1
    timers.insert(TimerEntry(when: handle.when, sequence: timerSequence, handle: handle))
    return handle
  }

  /// A cancelled timer stays in the heap until it is due or, when more than
  /// half the heap is cancelled timers, until the heap is rebuilt.
  func timerCancelled() {
    cancelledTimerCount += 1
    if cancelledTimerCount > 100 && cancelledTimerCount * 2 > timers.count {
      timers = Heap(timers.unordered.filter { !$0.handle.cancelled })
      cancelledTimerCount = 0
    }
  }

  /// Arms the wake-up timer for the earliest deadline before the loop
  /// blocks in its poll. Returns true when a timer is already due: then the
  /// loop must not block at all.
  private func armWakeTimer() -> Bool {
    while let top = timers.min, top.handle.cancelled {
      timers.removeMin()
      cancelledTimerCount -= 1
    }
    // An infinite deadline never comes: nothing to wait for (-infinity is
    // due at once, as any deadline in the past).
    guard let deadline = timers.min?.when, deadline != .infinity else {
      if armedDeadline != .infinity { uv_timer_stop(wakeTimer); armedDeadline = .infinity }
      return false
    }
    let remaining = deadline - time()
    if remaining <= 0 { return true }
    if deadline == armedDeadline { return false }
    uv_update_time(uv)
    // asyncio takes any delay; libuv waits at most INT_MAX ms a poll anyway.
    // A deadline further off is waited for a day at a time: the wake-up
    // finds it not due and arms again.
    let milliseconds = (remaining * 1000).rounded(.up)
    uv_timer_start(wakeTimer, loopTimerCallback,
                   milliseconds < maxTimerWait ? UInt64(milliseconds) : UInt64(maxTimerWait), 0)
    armedDeadline = deadline
    return false
  }

  private func moveDueTimers() {
    guard let first = timers.min else { return }
    let now = time()
    if first.when > now { return }
    while let top = timers.min, top.when <= now {
      timers.removeMin()
      if top.handle.cancelled {
        cancelledTimerCount -= 1
      } else {
        top.handle.scheduled = false
        ready.append(.handle(top.handle))
      }
    }
    armedDeadline = .nan  // force re-arming
  }

  // MARK: Running

  /// asyncio's run_forever.
  public func runForever() throws {
    try checkUsable()
    guard !isRunning, runningLoopOnThisThread() == nil else {
      throw RuntimeError(code: AIOS_ERUNNING.rawValue)
    }
    isRunning = true
    lastPollWaited = false
    setRunningLoop(self)
    defer {
      setRunningLoop(nil)
      isRunning = false
      stopping = false
      if closesWhenStopped { closeResources() }
    }
    while true {
      runOnce()
      if stopping { break }
    }
  }

  /// The last iteration's poll blocked (runOnce): the next one does not poll.
  private var lastPollWaited = false

  /// Iterations run so far (a stream that batches its reads tells polls apart by it).
  package private(set) var iterations = 0

  /// Nothing is ready and no stop was asked for: the poll may block (until
  /// the next timer, which this arms).
  @inline(__always)
  private func mayWait() -> Bool { ready.isEmpty && !stopping && !armWakeTimer() }

  /// One iteration (asyncio's _run_once).
  private func runOnce() {
    iterations &+= 1
    var waits = mayWait()
    if let (callback, arg) = iterationCallback {
      callback(arg, waits ? 1 : 0)
      // What the callback did (a callback or a timer scheduled, the loop
      // stopped) counts in this iteration: it may no longer wait.
      if waits { waits = mayWait() }
    }
    // After an iteration that waited and took every event then ready, what
    // they scheduled runs before polling again (libuv's order, and
    // uvloop's): a request and its answer cost one poll, not two.
    let justPolled = lastPollWaited
    lastPollWaited = waits
    if waits {
      uv_run(uv, UV_RUN_ONCE)
    } else if hasIOActivity && !justPolled {
      uv_run(uv, UV_RUN_NOWAIT)
    } else if threadsafePending {
      // No poll this iteration (no I/O to poll for, or the last one just
      // polled): the threadsafe calls are taken without a system call.
      drainThreadsafe()
    }
    drainDeferredReleases()
    moveDueTimers()
    var count = ready.count
    while count > 0, let item = ready.popFirst() {
      count -= 1
      if debug {
        let start = time()
        run(item)
        let took = time() - start
        if took >= slowCallbackDuration {
          callExceptionHandler(ExceptionContext(
            message: "Executing \(describe(item)) took \(formatSeconds(took)) seconds"))
        }
      } else {
        run(item)
      }
    }
  }

  @inline(__always)
  private func run(_ item: ReadyItem) {
    switch item {
    case .handle(let handle): handle.run()
    case .callback(let future, let callback): callback.invoke(future)
    case .step(let task): task.step(outcome: nil)
    case .call(let fn, let arg): fn(arg)
    case .advance(let operation): operation.waiterDone()
    case .job(let job):
      let previous = currentTaskAddress
      currentTaskAddress = nil
      job.runSynchronously(on: asUnownedTaskExecutor())
      currentTaskAddress = previous
    }
  }

  private func describe(_ item: ReadyItem) -> String {
    switch item {
    case .handle(let handle): return "\(handle)"
    case .callback(let future, _): return "a done callback of \(future)"
    case .step(let task): return "a step of \(task)"
    case .job: return "a Swift job"
    case .call(let fn, _): return "<Handle \(unsafeBitCast(fn, to: UnsafeRawPointer.self))>"
    case .advance(let operation): return "a step of \(operation)"
    }
  }

  /// asyncio's stop: the loop stops after the current iteration.
  public func stop() throws {
    try checkUsable()
    stopping = true
  }

  /// asyncio's run_until_complete: runs until `future` is done, then throws
  /// its error or cancellation, if it has one.
  public func runUntilComplete(_ future: AnyFuture) throws {
    try runUntilDone(future)
    try future.checkResult()
  }

  /// Runs until `future` is done, whatever its outcome.
  public func runUntilDone(_ future: AnyFuture) throws {
    try checkUsable()
    guard future.loop === self else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    let token = future.addDoneCallback { [unowned self] _ in self.stopping = true }
    defer { future.removeDoneCallback(token) }
    try runForever()
    guard future.isDone else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "Event loop stopped before Future completed.")
    }
  }

  /// Runs `future` to completion and returns its value.
  public func runUntilComplete<T>(_ future: Future<T>) throws -> T {
    try runUntilComplete(future as AnyFuture)
    return try future.result()
  }

  public func runUntilComplete<T>(_ task: AioTask<T>) throws -> T {
    try runUntilComplete(task as AnyFuture)
    return try task.result()
  }

  /// asyncio's close: drops pending callbacks and timers, frees libuv's loop.
  /// Closing a closed loop does nothing.
  public func close() throws {
    guard isOwnerThread else { throw RuntimeError(code: AIOS_EWRONGTHREAD.rawValue) }
    guard !isRunning else { throw RuntimeError(code: AIOS_ERUNNING.rawValue, "Cannot close a running event loop") }
    if isClosed { return }
    closeResources()
  }

  /// The C ABI's task factory (aios_loop_set_task_factory): a C function
  /// and its argument.
  package var taskFactory: (function: UnsafeRawPointer, argument: UnsafeMutableRawPointer?)?

  /// What lets go when the loop closes, one action per owner: pending
  /// operations that hold themselves in a cycle until they finish (a wait,
  /// a task group's exit; nothing can finish them then, and they must be
  /// freed with their users, as asyncio's collector frees them), and the C
  /// layer's handle lent for the loop itself.
  private var closeActions: [ObjectIdentifier: () -> Void] = [:]
  package func atClose(_ owner: AnyObject, _ letGo: @escaping () -> Void) {
    closeActions[ObjectIdentifier(owner)] = letGo
  }
  /// `owner` finished before the loop closed: nothing to let go.
  func notAtClose(_ owner: AnyObject) { closeActions[ObjectIdentifier(owner)] = nil }

  /// A loop made through the C ABI (aios_loop_new) has no owner but its C
  /// references: the last one going closes it. A runner's loop is its
  /// runner's to close.
  package var closesWithLastForeignReference = false

  /// Closes the loop now, or once it stops if it is running: nobody will
  /// be left to close it (its last user let go of it, maybe from one of its
  /// callbacks).
  package func closeWhenUnreachable() {
    if closesWithLastForeignReference { closeNowOrWhenStopped() }
  }

  /// Closes the loop now, or once it stops if it is running (its owner let
  /// go of it from one of its callbacks). On the loop's thread.
  package func closeNowOrWhenStopped() {
    guard isOwnerThread, !isClosed else { return }
    if isRunning { closesWhenStopped = true } else { closeResources() }
  }

  private func closeResources() {
    closesWhenStopped = false
    let dropped = threadsafeQueue.withLock { queue -> [UnsafeSendable<ReadyItem>] in
      aiosi_flag_store(sharedFlags + 1, true)
      let items = queue
      queue.removeAll()
      return items
    }
    for item in dropped { ready.append(item.value) }
    // Jobs of Swift tasks are dropped too: those tasks never resume, as a
    // coroutine left pending by a closed asyncio loop never does.
    ready.releaseStorage()
    for entry in timers.unordered { entry.handle.cancelWithoutNotice() }
    timers = Heap()
    // Nothing can run their callbacks any more: open transports and servers
    // are aborted (their connection_lost runs in the uv_run below).
    while let (key, (owner, abort)) = openIO.first {
      openIO[key] = nil
      abort(owner.takeUnretainedValue())
    }
    uv_close(asHandle(wakeTimer), nil)
    uv_close(asHandle(wakeAsync), nil)
    uv_run(uv, UV_RUN_DEFAULT)
    uv_loop_close(uv)
    // The bodies unwound find their loop as if it ran.
    let running = aiosi_get_running_loop()
    setRunningLoop(self)
    unwindSwiftTasks()
    aiosi_set_running_loop(running)
    bodiesAwayFromSteps = [:]
    releaseTaskList()
    let actions = closeActions
    closeActions = [:]
    for letGo in actions.values { letGo() }
    sharedDoneFuture = nil
    bindingState = nil
    iterationCallback = nil
    drainDeferredReleases()
  }

  // MARK: Errors nobody handled

  /// asyncio's call_exception_handler.
  public func callExceptionHandler(_ context: ExceptionContext) {
    guard let handler = exceptionHandler else {
      defaultExceptionHandler(context)
      return
    }
    handler(self, context)
  }

  /// Prints a report to stderr, as asyncio's default handler logs one.
  public func defaultExceptionHandler(_ context: ExceptionContext) {
    var report = context.message.isEmpty ? "Unhandled error in event loop" : context.message
    if let future = context.future { report += "\n  future: \(future)" }
    if let handle = context.handle { report += "\n  handle: \(handle)" }
    if let error = context.error { report += "\n  error: \(error)" }
    fputs("aio-swift: " + report + "\n", stderr)
  }
}

/// A write to a peer that went away raises SIGPIPE, whose default action
/// ends the process; libuv's writes do not ask for it not to. As Python does
/// at startup, the library ignores it when nothing else handles it, and the
/// write gets EPIPE.
private let ignoreSIGPIPE: Void = {
  var current = sigaction()
  if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
    signal(SIGPIPE, SIG_IGN)
  }
}()

/// The size of a loop's read arena: what one read of a stream takes at most.
package let readArenaSize = 256 * 1024

/// Memory the kernel reads sockets into starts on a cache line. Its copy to
/// user memory (rep movsb) runs 2-3x slower on AMD EPYC when the
/// destination sits 8 to 31 bytes further into its page than the source
/// does in its own (4 KiB aliasing); socket data starts on a line, so a
/// buffer that does too is never in that range. Measured on loopback, a
/// 16 KiB read into page + 16 took 13-17 us, into page + 0, + 32 or + 64
/// 6 us; the echo server on the C transport API went from 0.67x to 1.23x
/// uvloop at 10 connections of 16 KiB.
package let ioAlignment = 64

/// The longest the wake-up timer is armed for, in milliseconds (a day).
private let maxTimerWait: Double = 86_400_000

/// A time or delay argument: asyncio takes any float, but NaN orders with
/// nothing, so it is refused. Infinity is a deadline that never comes.
@inline(__always)
func checkTime(_ value: Double) throws {
  if value.isNaN { throw RuntimeError(code: AIOS_EINVAL.rawValue, "time is NaN") }
}

private func formatSeconds(_ seconds: Double) -> String {
  let ms = Int((seconds * 1000).rounded())
  return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000)"
}

struct TimerEntry: Comparable {
  let when: Double
  let sequence: UInt64
  let handle: TimerHandle
  static func < (a: TimerEntry, b: TimerEntry) -> Bool {
    a.when < b.when || (a.when == b.when && a.sequence < b.sequence)
  }
  static func == (a: TimerEntry, b: TimerEntry) -> Bool { a.sequence == b.sequence }
}

@inline(__always)
func asHandle<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
  UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
}

private func loopTimerCallback(_ timer: UnsafeMutablePointer<uv_timer_t>?) {
  // The loop moves due timers itself after uv_run. libuv runs due timers
  // before it polls: uv_stop makes that poll return at once rather than
  // wait with no timer armed. The timer may also fire a little early
  // (libuv counts whole milliseconds): the loop re-arms it then.
  guard let timer, let data = timer.pointee.data else { return }
  let loop = Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue()
  loop.armedDeadline = .nan
  uv_stop(loop.uv)
}

private func loopAsyncCallback(_ async: UnsafeMutablePointer<uv_async_t>?) {
  guard let data = async?.pointee.data else { return }
  Unmanaged<Loop>.fromOpaque(data).takeUnretainedValue().drainThreadsafe()
}

// MARK: The running loop of each thread

extension Loop {
  /// False when another loop runs on this thread (a primitive of this loop
  /// must not be used there). No reference is taken: it is a pointer test.
  @inline(__always)
  var isRunningOrIdleOnThisThread: Bool {
    guard let running = aiosi_get_running_loop() else { return true }
    return running == Unmanaged.passUnretained(self).toOpaque()
  }

  /// True when this loop is the one running on this thread: then the thread
  /// is its own and it is open. No reference is taken: it is a pointer test.
  @inline(__always)
  package var isRunningOnThisThread: Bool {
    aiosi_get_running_loop() == Unmanaged.passUnretained(self).toOpaque()
  }

  /// One future, done with no value, shared by every call of this loop that
  /// did not have to wait: it cannot change, so sharing it is safe.
  package var doneFuture: AnyFuture {
    if let sharedDoneFuture { return sharedDoneFuture }
    // A closed loop has let go of its shared one for good: kept now, it
    // would keep the loop alive.
    if isClosed { return AnyFuture.done(on: self) }
    let future = AnyFuture.done(on: self)
    sharedDoneFuture = future
    return future
  }
}

func runningLoopOnThisThread() -> Loop? {
  guard let p = aiosi_get_running_loop() else { return nil }
  return Unmanaged<Loop>.fromOpaque(p).takeUnretainedValue()
}

private func setRunningLoop(_ loop: Loop?) {
  aiosi_set_running_loop(loop.map { Unmanaged.passUnretained($0).toOpaque() })
}

/// asyncio's get_running_loop: the loop running on this thread.
public func getRunningLoop() throws -> Loop {
  guard let loop = runningLoopOnThisThread() else {
    throw RuntimeError(code: AIOS_ENOLOOP.rawValue, "no running event loop")
  }
  return loop
}
