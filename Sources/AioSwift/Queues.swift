// asyncio's queues (Lib/asyncio/queues.py): Queue, LifoQueue and
// PriorityQueue are one class here with three orders. put() and get() are
// Operations running CPython's loops (`while full: await putter`).
//
// The queue itself holds objects (ObjectQueue): its operations are then
// compiled once, not run as unspecialised generic code, which looked up
// type metadata at every step. Queue<T> boxes Swift values into it; C's
// values are objects already.
internal import CAioSwift
import DequeModule
import HeapModule

package final class ObjectQueue: LoopBound {
  public typealias T = AnyObject

  public enum Order {
    case fifo
    case lifo
    /// Smallest first by `areInIncreasingOrder`; ties leave in arrival order.
    case priority(_ areInIncreasingOrder: (AnyObject, AnyObject) -> Bool)
  }

  public let maxsize: Int
  private let order: Order
  private var items = Deque<T>()
  private var heap = Heap<PriorityEntry>()
  private var nextSequence: UInt64 = 0
  // Blocked get() and put() operations, each its own waiter.
  private var getters = Deque<Operation>()
  private var putters = Deque<Operation>()
  public private(set) var unfinishedTasks = 0
  private let finished: Event
  public private(set) var isShutdown = false
  /// Called with each item a get() operation delivers, before it completes
  /// (the C layer moves the item into the future's result).
  public var deliver: ((T, AnyFuture) -> Void)?

  /// A queue of at most `maxsize` items (0 or less: unbounded).
  public init(maxsize: Int = 0, order: Order = .fifo, loop: Loop? = nil) {
    self.maxsize = maxsize
    self.order = order
    finished = Event(loop: loop)
    finished.set()
    super.init(loop: loop, isQueue: true)
  }

  deinit {
    for waiter in getters { waiter.waiterVanished() }
    for waiter in putters { waiter.waiterVanished() }
  }

  public var count: Int {
    if case .priority = order { return heap.count }
    return items.count
  }
  public var isEmpty: Bool { count == 0 }
  public var isFull: Bool { maxsize > 0 && count >= maxsize }

  private func store(_ item: T) {
    switch order {
    case .fifo, .lifo: items.append(item)
    case .priority(let less):
      heap.insert(PriorityEntry(item: item, sequence: nextSequence, less: less))
      nextSequence &+= 1
    }
  }

  private func take() -> T {
    switch order {
    case .fifo: return items.removeFirst()
    case .lifo: return items.removeLast()
    case .priority: return heap.removeMin().item
    }
  }

  /// Drops every item (shutdown(immediate), or the queue going away).
  public func removeAll() -> [T] {
    var removed: [T] = []
    while !isEmpty { removed.append(take()) }
    return removed
  }

  private func wakeUpNext(_ waiters: inout Deque<Operation>) {
    while let waiter = waiters.popFirst() {
      if !waiter.waiterIsDone {
        waiter.wakeWaiter()
        break
      }
    }
  }

  // MARK: put

  public func putNowait(_ item: T) throws {
    _ = try loop()
    guard !isShutdown else { throw QueueShutDown() }
    guard !isFull else { throw QueueFull() }
    store(item)
    unfinishedTasks += 1
    finished.clear()
    wakeUpNext(&getters)
  }

  /// put(item); nil if the item went in at once.
  package func putOperation(_ item: T) throws -> AnyFuture? {
    let loop = try self.loop()
    if !isFull {
      try putNowait(item)
      return nil
    }
    guard !isShutdown else { throw QueueShutDown() }
    return Put(queue: self, item: item, loop: loop)
  }

  public func put(_ item: T) async throws {
    if let operation = try putOperation(item) { try await operation.wait() }
  }

  private final class Put: Operation {
    let queue: PrimitiveReference<ObjectQueue>
    var item: T?

    init(queue: ObjectQueue, item: T, loop: Loop) {
      self.queue = PrimitiveReference(queue)
      self.item = item
      super.init(loop: loop)
      waitForRoom()
    }

    private func waitForRoom() {
      queue.object!.putters.append(self)
      waitAsWaiter()
    }

    override func advance(_: AnyFuture) {
      guard let queue = queue.object else { return completeOrphaned() }
      let cancelled = cancellation(of: self)
      let putterCancelled = waiterIsCancelled
      leaveAsWaiter()
      if let cancelled {
        queue.putters.remove(self)
        if !queue.isFull && !putterCancelled { queue.wakeUpNext(&queue.putters) }
        item = nil
        completeThrowing(cancelled)
        return
      }
      if queue.isFull {
        if queue.isShutdown {
          item = nil
          completeThrowing(QueueShutDown())
        } else {
          waitForRoom()
        }
        return
      }
      do {
        try queue.putNowait(item!)
        item = nil
        completeReturning()
      } catch {
        item = nil
        completeThrowing(error)
      }
    }
  }

  // MARK: get

  public func getNowait() throws -> T {
    _ = try loop()
    if isEmpty {
      if isShutdown { throw QueueShutDown() }
      throw QueueEmpty()
    }
    let item = take()
    wakeUpNext(&putters)
    return item
  }

  /// get(): the item at once, or an operation that delivers it.
  public enum Getting {
    case ready(T)
    case waiting(AnyFuture)
  }

  package func getOperation() throws -> Getting {
    let loop = try self.loop()
    if !isEmpty { return .ready(try getNowait()) }
    guard !isShutdown else { throw QueueShutDown() }
    return .waiting(Get(queue: self, loop: loop))
  }

  public func get() async throws -> T {
    switch try getOperation() {
    case .ready(let item): return item
    case .waiting(let operation):
      try await operation.wait()
      return (operation as! Get).item!
    }
  }

  final class Get: Operation {
    let queue: PrimitiveReference<ObjectQueue>
    var item: T?

    init(queue: ObjectQueue, loop: Loop) {
      self.queue = PrimitiveReference(queue)
      super.init(loop: loop)
      waitForItem()
    }

    private func waitForItem() {
      queue.object!.getters.append(self)
      waitAsWaiter()
    }

    override func advance(_: AnyFuture) {
      guard let queue = queue.object else { return completeOrphaned() }
      let cancelled = cancellation(of: self)
      let getterCancelled = waiterIsCancelled
      leaveAsWaiter()
      if let cancelled {
        queue.getters.remove(self)
        if !queue.isEmpty && !getterCancelled { queue.wakeUpNext(&queue.getters) }
        completeThrowing(cancelled)
        return
      }
      if queue.isEmpty {
        if queue.isShutdown {
          completeThrowing(QueueShutDown())
        } else {
          waitForItem()
        }
        return
      }
      do {
        let item = try queue.getNowait()
        self.item = item
        queue.deliver?(item, self)
        completeReturning()
      } catch {
        completeThrowing(error)
      }
    }
  }

  // MARK: task_done, join, shutdown

  public func taskDone() throws {
    _ = try loop()
    guard unfinishedTasks > 0 else {
      throw RuntimeError(code: AIOS_ERELEASED.rawValue, "task_done() called too many times")
    }
    unfinishedTasks -= 1
    if unfinishedTasks == 0 { finished.set() }
  }

  /// join(): waits until every item put has been marked done; nil if so now.
  package func joinOperation() throws -> AnyFuture? {
    _ = try loop()
    return unfinishedTasks > 0 ? try finished.waitOperation() : nil
  }

  public func join() async throws {
    if let operation = try joinOperation() { try await operation.wait() }
  }

  /// shutdown(immediate): put() fails from now on; get() fails once the
  /// queue is empty (at once when `immediate`, which drops the items and
  /// returns them). Blocked getters and putters wake up and fail.
  @discardableResult
  public func shutdown(immediate: Bool = false) throws -> [T] {
    _ = try loop()
    isShutdown = true
    var dropped: [T] = []
    if immediate {
      while !isEmpty {
        dropped.append(take())
        if unfinishedTasks > 0 { unfinishedTasks -= 1 }
      }
      if unfinishedTasks == 0 { finished.set() }
    }
    for waiter in getters + putters where !waiter.waiterIsDone { waiter.wakeWaiter() }
    getters.removeAll()
    putters.removeAll()
    return dropped
  }
}

/// asyncio.Queue of Swift values (LifoQueue and PriorityQueue below are
/// the same queue in another order).
public class Queue<T> {
  private final class Box {
    let value: T
    init(_ value: T) { self.value = value }
  }

  public enum Order {
    case fifo
    case lifo
    /// Smallest first by `areInIncreasingOrder`; ties leave in arrival order.
    case priority(_ areInIncreasingOrder: (T, T) -> Bool)
  }

  package let core: ObjectQueue

  /// A queue of at most `maxsize` items (0 or less: unbounded).
  public init(maxsize: Int = 0, order: Order = .fifo, loop: Loop? = nil) {
    let coreOrder: ObjectQueue.Order
    switch order {
    case .fifo: coreOrder = .fifo
    case .lifo: coreOrder = .lifo
    case .priority(let less): coreOrder = .priority { less(Queue.unbox($0), Queue.unbox($1)) }
    }
    core = ObjectQueue(maxsize: maxsize, order: coreOrder, loop: loop)
  }

  private static func unbox(_ object: AnyObject) -> T { unsafeDowncast(object, to: Box.self).value }

  public var maxsize: Int { core.maxsize }
  public var count: Int { core.count }
  public var isEmpty: Bool { core.isEmpty }
  public var isFull: Bool { core.isFull }
  public var unfinishedTasks: Int { core.unfinishedTasks }
  public var isShutdown: Bool { core.isShutdown }

  public func putNowait(_ item: T) throws { try core.putNowait(Box(item)) }
  public func put(_ item: T) async throws { try await core.put(Box(item)) }
  public func getNowait() throws -> T { Queue.unbox(try core.getNowait()) }
  public func get() async throws -> T { Queue.unbox(try await core.get()) }
  public func taskDone() throws { try core.taskDone() }
  public func join() async throws { try await core.join() }

  /// shutdown(immediate): see ObjectQueue.shutdown; returns the items dropped.
  @discardableResult
  public func shutdown(immediate: Bool = false) throws -> [T] {
    try core.shutdown(immediate: immediate).map(Queue.unbox)
  }
}

/// asyncio.LifoQueue: the last item put is the first one got.
public final class LifoQueue<T>: Queue<T> {
  public init(maxsize: Int = 0, loop: Loop? = nil) {
    super.init(maxsize: maxsize, order: .lifo, loop: loop)
  }
}

/// asyncio.PriorityQueue: the smallest item first; equal ones in arrival
/// order.
public final class PriorityQueue<T: Comparable>: Queue<T> {
  public init(maxsize: Int = 0, loop: Loop? = nil) {
    super.init(maxsize: maxsize, order: .priority(<), loop: loop)
  }
}

extension Queue where T: Comparable {
  /// asyncio.PriorityQueue: smallest first.
  public static func priority(maxsize: Int = 0, loop: Loop? = nil) -> Queue {
    PriorityQueue(maxsize: maxsize, loop: loop)
  }
}

/// A priority queue's item in HeapModule's heap: ordered by the queue's
/// comparison, then by arrival (asyncio's entries are compared whole, and
/// equal priorities leave in arrival order).
struct PriorityEntry: Comparable {
  let item: AnyObject
  let sequence: UInt64
  let less: (AnyObject, AnyObject) -> Bool

  static func < (a: PriorityEntry, b: PriorityEntry) -> Bool {
    if a.less(a.item, b.item) { return true }
    if a.less(b.item, a.item) { return false }
    return a.sequence < b.sequence
  }
  static func == (a: PriorityEntry, b: PriorityEntry) -> Bool { a.sequence == b.sequence }
}
