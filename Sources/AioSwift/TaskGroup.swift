// asyncio.TaskGroup (Lib/asyncio/taskgroups.py): tasks created in a scope;
// the scope waits for all of them; the first failure cancels the others and
// the parent, and every failure comes out together (TaskGroupError).
internal import CAioSwift

public final class AioTaskGroup: CustomStringConvertible {
  public let loop: Loop
  private(set) var parent: TaskBase?
  private var entered = false
  private var exiting = false
  private var aborting = false
  private var parentCancelRequested = false
  /// The tasks not done yet (asyncio's set; a finished task leaves in O(1)).
  private var tasks: [ObjectIdentifier: TaskBase] = [:]
  private var errors: [any Error] = []
  private var onCompleted: AnyFuture?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  public init(loop: Loop) {
    self.loop = loop
    LiveObjects.primitives.add(1, ordering: .relaxed)
  }

  deinit { LiveObjects.primitives.subtract(1, ordering: .relaxed) }

  /// `async with`: the group belongs to `parent`, the task running it.
  public func enter(_ parent: TaskBase) throws {
    guard !entered else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "TaskGroup \(self) has already been entered")
    }
    guard parent.loop === loop else { throw RuntimeError(code: AIOS_EWRONGLOOP.rawValue) }
    self.parent = parent
    entered = true
  }

  /// Throws unless a task may be created in the group now.
  public func checkCanCreate() throws {
    guard entered else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "TaskGroup \(self) has not been entered")
    }
    guard !(exiting && tasks.isEmpty) else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "TaskGroup \(self) is finished")
    }
    guard !aborting else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "TaskGroup \(self) is shutting down")
    }
  }

  /// create_task: a task of the group running `body`.
  @discardableResult
  public func createTask<T>(name: String? = nil,
                            _ body: @isolated(any) @escaping () async throws -> T) throws -> AioTask<T> {
    try checkCanCreate()
    let task = try loop.createTask(name: name, body)
    add(task)
    return task
  }

  /// Adds a task just created (by checkCanCreate's permission) to the group.
  public func add(_ task: TaskBase) {
    if task.isDone {
      taskDone(task)
    } else {
      tasks[ObjectIdentifier(task)] = task
      task.addDoneCallback { [weak self] done in self?.taskDone(done as! TaskBase) }
    }
  }

  private func abort() {
    aborting = true
    for task in tasks.values where !task.isDone { task.cancel() }
  }

  /// _on_task_done.
  private func taskDone(_ task: TaskBase) {
    tasks[ObjectIdentifier(task)] = nil
    if let onCompleted, tasks.isEmpty, !onCompleted.isDone { onCompleted.wake() }
    guard !task.isCancelled, let error = task.error else { return }
    task.markErrorRetrieved()
    errors.append(error)
    guard let parent else { return }
    if parent.isDone {
      loop.callExceptionHandler(ExceptionContext(
        message: "Task \(task) has errored out but its parent task \(parent) is already completed",
        error: error, future: task))
      return
    }
    if !aborting && !parentCancelRequested {
      abort()
      parentCancelRequested = true
      parent.cancel()
    }
  }

  /// __aexit__ with the error the body raised (nil if none): an operation
  /// done once every task is, failing with the group's errors or the
  /// cancellation to propagate. Done normally, the body's own error (if any)
  /// is what goes on.
  package func exitOperation(_ raised: (any Error)?) throws -> AnyFuture {
    try loop.checkUsable()
    guard entered, !exiting, let parent else {
      throw RuntimeError(code: AIOS_EINVALIDSTATE.rawValue, "TaskGroup \(self) is not active")
    }
    return Exit(group: self, parent: parent, raised: raised)
  }

  private final class Exit: Operation {
    let group: AioTaskGroup
    let parent: TaskBase
    let raised: (any Error)?
    var propagate: CancelledError?

    init(group: AioTaskGroup, parent: TaskBase, raised: (any Error)?) {
      self.group = group
      self.parent = parent
      self.raised = raised.map(asAsyncioError)
      super.init(loop: group.loop)
      group.exiting = true
      propagate = self.raised as? CancelledError
      if raised != nil && !group.aborting { group.abort() }
      waitForTasks()
    }

    private func waitForTasks() {
      if group.tasks.isEmpty { return finish() }
      let completed = RawFuture(loop: loop)
      group.onCompleted = completed
      wait(on: completed)
      // The group holds `completed`, which holds this exit, which holds
      // the group.
      loop.atClose(self) { [weak self] in self?.group.onCompleted = nil }
    }

    override func advance(_ completed: AnyFuture) {
      // Cancelled while waiting: abort the group, but go on waiting.
      if let cancelled = cancellation(of: completed), !group.aborting {
        propagate = cancelled
        group.abort()
      }
      group.onCompleted = nil
      waitForTasks()
    }

    private func finish() {
      loop.notAtClose(self)
      if group.parentCancelRequested && parent.uncancel() == 0 { propagate = nil }
      if let propagate, group.errors.isEmpty { return completeThrowing(propagate) }
      if let raised, !(raised is CancelledError) { group.errors.append(raised) }
      if !group.errors.isEmpty {
        // The group's errors win; a cancellation still pending is re-armed.
        if parent.cancelling > 0 {
          parent.uncancel()
          parent.cancel()
        }
        let errors = group.errors
        group.errors = []
        return completeThrowing(TaskGroupError(errors))
      }
      completeReturning()
    }
  }

  public var description: String {
    var info = ""
    if !tasks.isEmpty { info += " tasks=\(tasks.count)" }
    if !errors.isEmpty { info += " errors=\(errors.count)" }
    if aborting { info += " cancelling" } else if entered { info += " entered" }
    return "<TaskGroup\(info)>"
  }
}

/// `async with asyncio.TaskGroup() as tg`: runs `body` with a group, waits
/// for every task of it, and raises TaskGroupError with all their errors if
/// any failed (the first failure cancels the rest and the body).
public func taskGroup<T>(_ body: (AioTaskGroup) async throws -> T) async throws -> T {
  guard let parent = currentTask() else {
    throw RuntimeError(code: AIOS_ENOLOOP.rawValue, "TaskGroup cannot determine the parent task")
  }
  let group = AioTaskGroup(loop: parent.loop)
  try group.enter(parent)
  let value: T
  do {
    value = try await body(group)
  } catch {
    try await group.exitOperation(error).wait()
    throw error
  }
  try await group.exitOperation(nil).wait()
  return value
}
