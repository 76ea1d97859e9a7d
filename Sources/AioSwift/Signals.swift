// Signal handlers (asyncio's add_signal_handler and remove_signal_handler)
// on libuv's signal watchers: libuv's own handler only writes to a pipe, and
// the callback runs later as an ordinary callback of the loop.
internal import CAioSwift
internal import CLibUV
import Glibc

/// Signals are numbered 1 ..< signalLimit (Python's signal.NSIG).
let signalLimit: Int32 = 65

/// One signal's watcher on one loop.
final class SignalWatcher {
  unowned let loop: Loop
  let signum: Int32
  var callback: () throws -> Void
  private let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)

  init(loop: Loop, signum: Int32, callback: @escaping () throws -> Void) throws {
    self.loop = loop
    self.signum = signum
    self.callback = callback
    var rc = uv_signal_init(loop.uv, handle)
    if rc == 0 {
      handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
      rc = uv_signal_start(handle, signalArrived, signum)
      if rc != 0 { stop() }
    } else {
      handle.deallocate()
    }
    guard rc == 0 else {
      if rc == UV_EINVAL.rawValue {
        throw RuntimeError(code: AIOS_EINVAL.rawValue, "sig \(signum) cannot be caught")
      }
      throw uvError(rc)
    }
  }

  /// Closes the watcher; libuv puts back the default disposition once no
  /// loop watches the signal any more.
  func stop() {
    handle.pointee.data = nil
    uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) {
      $0?.deallocate()
    }
    // The library runs with SIGPIPE ignored (a write to a closed peer is
    // EPIPE, not death); removing a handler must not undo that.
    if signum == SIGPIPE {
      var current = sigaction()
      if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
        signal(SIGPIPE, SIG_IGN)
      }
    }
  }

  fileprivate func arrived() {
    // As asyncio's: a Handle on the ready queue, whose errors go to the
    // exception handler.
    _ = try? loop.callSoon { [weak self] in try self?.callback() }
  }
}

private func signalArrived(_ handle: UnsafeMutablePointer<uv_signal_t>?, _ signum: Int32) {
  guard let data = handle?.pointee.data else { return }
  Unmanaged<SignalWatcher>.fromOpaque(data).takeUnretainedValue().arrived()
}

extension Loop {
  private func checkSignal(_ signum: Int32) throws {
    guard signum >= 1, signum < signalLimit else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "sig \(signum) out of range(1, \(signalLimit))")
    }
  }

  /// asyncio's add_signal_handler: `callback` runs on the loop, as a
  /// callback of its own, each time the signal arrives; a handler already
  /// there for the signal is replaced. SIGKILL and SIGSTOP cannot be caught.
  /// Every loop that watches a signal gets it.
  public func addSignalHandler(_ signum: Int32, _ callback: @escaping () throws -> Void) throws {
    try checkUsable()
    try checkSignal(signum)
    guard signum != SIGKILL, signum != SIGSTOP else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "sig \(signum) cannot be caught")
    }
    if let watcher = signalWatchers[signum] {
      watcher.callback = callback
      return
    }
    let watcher = try SignalWatcher(loop: self, signum: signum, callback: callback)
    signalWatchers[signum] = watcher
    // Every handler goes when the loop closes.
    ioOpened(watcher) { [unowned self] _ in self.dropSignalHandler(signum) }
  }

  /// asyncio's remove_signal_handler: true if a handler was removed. The
  /// signal gets its default disposition back (for SIGPIPE: ignored, as the
  /// library keeps it).
  @discardableResult
  public func removeSignalHandler(_ signum: Int32) throws -> Bool {
    try checkUsable()
    try checkSignal(signum)
    return dropSignalHandler(signum)
  }

  @discardableResult
  private func dropSignalHandler(_ signum: Int32) -> Bool {
    guard let watcher = signalWatchers.removeValue(forKey: signum) else { return false }
    ioClosed(watcher)
    watcher.stop()
    return true
  }
}
