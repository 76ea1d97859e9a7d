// What the core asks of the layer that hands its objects to C.
//
// C knows the core's objects by handles, which only the C layer makes and
// counts. So the calls into C that pass objects (a step function, a done
// callback) and the releases of C references the core holds are the C
// layer's work. It gives each loop whose objects C may hold its interface:
// every way to create such an object (a step task, a C done callback) takes
// it, and so does the loop's first handle, so a loop has it before any C
// object of the loop exists.

/// The C layer's part of a loop C uses (Loop.foreign).
package protocol ForeignInterface: AnyObject {
  /// Calls the step function of `task` with the future it awaited (nil at
  /// its start or after a bare yield); returns the function's status.
  func step(_ task: StepTask, awaited: AnyFuture?) -> Int32
  /// Calls a C done callback for `future`.
  func callDone(_ function: ForeignDoneFunction, _ argument: UnsafeMutableRawPointer?, of future: AnyFuture)
  /// Drops one C reference the core held (a step task's own, or the one to
  /// the future it awaits).
  func releaseHandle(_ handle: UInt64)
  /// Releases the objects of this thread whose last C reference was dropped
  /// on another thread.
  func drainDeferredReleases()
}

extension Loop {
  /// Gives the loop its C interface (the same one every time).
  package func useForeignInterface(_ interface: any ForeignInterface) {
    if foreign == nil { foreign = interface }
  }
}
