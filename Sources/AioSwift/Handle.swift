// asyncio's Handle and TimerHandle: a scheduled callback that can be cancelled.
import Synchronization

/// A C callback's argument that comes with its destructor: freed exactly
/// once, when its last holder lets go of it (the callback ran, was
/// cancelled or removed, or its loop dropped it on closing).
package final class OwnedArgument {
  package let value: UnsafeMutableRawPointer?
  private var destructor: CDestructor?
  /// `destructor` (if any) frees `value` once, when this goes.
  package init(_ value: UnsafeMutableRawPointer?, _ destructor: CDestructor?) {
    self.value = value
    self.destructor = destructor
  }
  /// The caller keeps the value after all (the call that took it failed).
  package func disown() { destructor = nil }
  deinit { destructor?(value) }
}

public class Handle: CustomStringConvertible {
  enum Callback {
    case swift(() throws -> Void)
    case c(CCallback, UnsafeMutableRawPointer?)
    case cOwned(CCallback, OwnedArgument)

    /// A C callback, owning its argument when it has a destructor.
    static func foreign(_ fn: CCallback, _ arg: UnsafeMutableRawPointer?,
                        _ destructor: CDestructor?) -> Callback {
      guard let destructor else { return .c(fn, arg) }
      return .cOwned(fn, OwnedArgument(arg, destructor))
    }
  }

  /// Held strongly (through loopKeeper), as a future holds its loop: C may
  /// keep a handle after letting go of the loop. The loop drops its
  /// callbacks and timers when it closes, which ends the cycle.
  public var loop: Loop { loopReference.takeUnretainedValue() }
  private let loopReference: Unmanaged<Loop>
  /// The loop's address, read without counting a reference to the loop
  /// (any thread may read it: see Loop.threadsafeHandle).
  package var loopAddress: UnsafeMutableRawPointer { loopReference.toOpaque() }
  /// What keeps the loop alive: the loop itself, or for a handle made on
  /// another thread, an object holding the loop by other means (the loop's
  /// reference count belongs to its own thread).
  private let loopKeeper: AnyObject
  /// Dropped once the callback ran or was cancelled, so what it holds is freed.
  var callback: Callback?
  public private(set) var cancelled = false
  /// Runs each time it is scheduled, keeping its callback (asyncio's handles
  /// of readers and writers are run again at every event).
  var repeats = false
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  init(loop: Loop, callback: Callback) {
    loopReference = Unmanaged.passUnretained(loop)
    loopKeeper = loop
    self.callback = callback
    LiveObjects.handles.add(1, ordering: .relaxed)
  }

  /// Takes the loop's address: this runs on other threads, which must not
  /// count references to it.
  init(loopAddress: UnsafeMutableRawPointer, keeper: AnyObject, callback: Callback) {
    loopReference = Unmanaged.fromOpaque(loopAddress)
    loopKeeper = keeper
    self.callback = callback
    LiveObjects.handles.add(1, ordering: .relaxed)
  }

  deinit { LiveObjects.handles.subtract(1, ordering: .relaxed) }

  /// The call that made the handle failed after all: its caller keeps the
  /// C argument, and the callback will not be called.
  package func disownArgument() {
    if case .cOwned(_, let arg)? = callback { arg.disown() }
    callback = nil
  }

  /// The callback will not be called. Cancelling twice, or after it ran, does nothing.
  public func cancel() {
    if cancelled { return }
    cancelled = true
    callback = nil
  }

  func run() {
    guard let callback else { return }
    if !repeats { self.callback = nil }
    switch callback {
    case .c(let fn, let arg): fn(arg)
    case .cOwned(let fn, let arg): fn(arg.value)
    case .swift(let body):
      do {
        try body()
      } catch {
        loop.callExceptionHandler(ExceptionContext(
          message: "Exception in callback \(self)", error: error, handle: self))
      }
    }
  }

  public var description: String {
    var text = "<\(type(of: self))"
    if cancelled { text += " cancelled" }
    switch callback {
    case .c(let fn, _)?, .cOwned(let fn, _)?: text += " \(unsafeBitCast(fn, to: UnsafeRawPointer.self))"
    default: break
    }
    return text + ">"
  }
}

public final class TimerHandle: Handle {
  /// The deadline in loop time.
  public let when: Double
  var scheduled = true

  init(loop: Loop, when: Double, callback: Callback) {
    self.when = when
    super.init(loop: loop, callback: callback)
  }

  public override func cancel() {
    if cancelled { return }
    super.cancel()
    if scheduled { loop.timerCancelled() }
  }

  /// Cancels without telling the loop (the loop is dropping its timers).
  func cancelWithoutNotice() {
    scheduled = false
    super.cancel()
  }
}
