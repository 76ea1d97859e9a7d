// asyncio.to_thread: work on libuv's thread pool, its outcome delivered on
// the loop's thread. A cancelled future does not stop the work (as asyncio's
// executor cannot); its outcome is dropped when it arrives. Closing a loop
// waits for the work already started.
internal import CAioSwift
internal import CLibUV
import Glibc
import Synchronization

/// Work for the pool: `run` on a worker thread, then `complete` on the
/// loop's thread.
final class ThreadWork {
  let run: () -> Void
  let complete: () -> Void
  init(run: @escaping () -> Void, complete: @escaping () -> Void) {
    self.run = run
    self.complete = complete
  }
}

private let threadPoolStarted = Atomic<Bool>(false)
/// Orders setThreadPoolSize's setenv before libuv's getenv when the pool
/// starts, whichever threads they run on.
private let threadPoolStart = ThreadLock<Void>(())

/// The size of the worker pool (libuv's UV_THREADPOOL_SIZE, 4 unless set).
/// It can be set until the first work is queued in the process. libuv reads
/// the size from the environment only, so this calls setenv: glibc's setenv
/// is not safe against getenv on other threads, so call it before starting
/// threads that read the environment.
public func setThreadPoolSize(_ size: Int) throws {
  guard (1...1024).contains(size) else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  try threadPoolStart.withLock { _ in
    guard !threadPoolStarted.load(ordering: .acquiring) else {
      throw RuntimeError(code: AIOS_EBUSY.rawValue, "the thread pool has started")
    }
    setenv("UV_THREADPOOL_SIZE", "\(size)", 1)
  }
}

extension Loop {
  func queueWork(_ work: ThreadWork) throws {
    try checkUsable()
    if !threadPoolStarted.load(ordering: .acquiring) {
      threadPoolStart.withLock { _ in threadPoolStarted.store(true, ordering: .releasing) }
    }
    let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
    request.pointee.data = Unmanaged.passRetained(work).toOpaque()
    let rc = uv_queue_work(uv, request, threadWorkRun, threadWorkDone)
    if rc != 0 {
      Unmanaged<ThreadWork>.fromOpaque(request.pointee.data).release()
      request.deallocate()
      throw OSError(errno: -rc)
    }
  }

  /// to_thread for C: `work` runs on a worker thread and reports a status
  /// and a value; the future gets the value (freed by `destructor` unless
  /// delivered) or fails with the status.
  package func toThread(_ work: @escaping () -> (Int32, UnsafeMutableRawPointer?),
                       destructor: CDestructor?) throws -> AnyFuture {
    let future = RawFuture(loop: self)
    let outcome = Mutex<(Int32, UnsafeMutableRawPointer?)>((0, nil))
    try queueWork(ThreadWork(
      run: { let result = work(); outcome.withLock { $0 = result } },
      complete: {
        let (status, value) = outcome.withLock { $0 }
        if future.isDone || status < 0 {
          destructor?(value)
          if !future.isDone { try? future.setError(makeError(code: status, message: nil)) }
        } else {
          try? future.setCResult(value, destructor: destructor)
        }
      }))
    return future
  }
}

private func threadWorkRun(_ request: UnsafeMutablePointer<uv_work_t>?) {
  guard let data = request?.pointee.data else { return }
  Unmanaged<ThreadWork>.fromOpaque(data).takeUnretainedValue().run()
}

private func threadWorkDone(_ request: UnsafeMutablePointer<uv_work_t>?, _ status: Int32) {
  guard let request, let data = request.pointee.data else { return }
  let work = Unmanaged<ThreadWork>.fromOpaque(data).takeRetainedValue()
  request.deallocate()
  work.complete()
}

/// asyncio.to_thread: runs `body` on a worker thread and awaits its result;
/// the loop goes on meanwhile.
public func toThread<T>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  let loop = try getRunningLoop()
  let future = loop.createFuture(of: T.self)
  let outcome = Mutex<Result<T, any Error>?>(nil)
  try loop.queueWork(ThreadWork(
    run: { let result = Result { try body() }; outcome.withLock { $0 = result } },
    complete: {
      guard !future.isDone, let result = outcome.withLock({ $0 }) else { return }
      switch result {
      case .success(let value): try? future.setResult(value)
      case .failure(let error as CancelledError): future.cancel(message: error.message)
      case .failure(let error): try? future.setError(error)
      }
    }))
  return try await future.value
}
