// The loop is the executor of its Swift tasks: their jobs run on the loop's
// thread, between its callbacks, in the order they were scheduled.
extension Loop: TaskExecutor {
  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    guard isOwnerThread else {
      // A task resumed from another thread comes back through the wake-up
      // queue. On a closed loop it is dropped: it can never run again.
      try? enqueueThreadsafe(.job(job))
      return
    }
    if let task = capturingTask {
      capturingTask = nil
      task.pendingJob = job
      return
    }
    ready.append(.job(job))
  }
}
