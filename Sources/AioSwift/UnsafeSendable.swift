// Values that cross threads only to be used by the thread they belong to.

/// Lets values cross into the threadsafe queue (or a cancellation handler);
/// the loop's thread alone uses them.
struct UnsafeSendable<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}
