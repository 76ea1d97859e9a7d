// How many objects of each kind are alive: the C ABI's aios_live_objects
// and the tests' leak checks.
import Synchronization

/// How many objects of each kind are alive, for leak checks in tests.
package enum LiveObjects {
  public static let loops = Atomic<Int>(0)
  public static let handles = Atomic<Int>(0)
  public static let futures = Atomic<Int>(0)
  public static let tasks = Atomic<Int>(0)
  public static let errors = Atomic<Int>(0)
  public static let runners = Atomic<Int>(0)
  public static let primitives = Atomic<Int>(0)
  public static let queues = Atomic<Int>(0)
  public static let transports = Atomic<Int>(0)
  public static let servers = Atomic<Int>(0)
  public static let streams = Atomic<Int>(0)
  public static let subprocesses = Atomic<Int>(0)

  public struct Counts: Equatable, CustomStringConvertible {
    public var loops, handles, futures, tasks, errors, runners, primitives, queues: Int
    public var transports, servers, streams, subprocesses: Int
    public var description: String {
      "loops=\(loops) handles=\(handles) futures=\(futures) tasks=\(tasks) errors=\(errors) "
        + "runners=\(runners) primitives=\(primitives) queues=\(queues) "
        + "transports=\(transports) servers=\(servers) streams=\(streams) subprocesses=\(subprocesses)"
    }
  }

  /// Every count at once.
  public static var counts: Counts {
    Counts(loops: loops.load(ordering: .relaxed), handles: handles.load(ordering: .relaxed),
           futures: futures.load(ordering: .relaxed), tasks: tasks.load(ordering: .relaxed),
           errors: errors.load(ordering: .relaxed), runners: runners.load(ordering: .relaxed),
           primitives: primitives.load(ordering: .relaxed), queues: queues.load(ordering: .relaxed),
           transports: transports.load(ordering: .relaxed), servers: servers.load(ordering: .relaxed),
           streams: streams.load(ordering: .relaxed), subprocesses: subprocesses.load(ordering: .relaxed))
  }
}
