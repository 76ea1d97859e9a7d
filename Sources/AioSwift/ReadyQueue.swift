// The loop's ready queue: a FIFO of fixed-size blocks, as CPython's deque.
// It grows without copying, and gives drained blocks back as it empties, so
// a burst of a million callbacks leaves no million-entry buffer behind (a
// ring buffer would either keep it or, released, have to grow and copy it
// again on the next burst).

private let blockCapacity = 256

private struct Block {
  var next: UnsafeMutablePointer<Block>?
  let items: UnsafeMutablePointer<ReadyItem>
}

struct ReadyQueue {
  private var head: UnsafeMutablePointer<Block>?
  private var tail: UnsafeMutablePointer<Block>?
  /// Next item to pop in `head`; next free place in `tail`.
  private var headIndex = 0
  private var tailIndex = 0
  /// One drained block kept for reuse, so a queue that fills and empties
  /// around a block's size does not allocate each time.
  private var spare: UnsafeMutablePointer<Block>?
  private(set) var count = 0

  var isEmpty: Bool { count == 0 }

  private mutating func newBlock() -> UnsafeMutablePointer<Block> {
    if let block = spare {
      spare = nil
      block.pointee.next = nil
      return block
    }
    let block = UnsafeMutablePointer<Block>.allocate(capacity: 1)
    block.initialize(to: Block(next: nil, items: .allocate(capacity: blockCapacity)))
    return block
  }

  private mutating func retire(_ block: UnsafeMutablePointer<Block>) {
    if spare == nil {
      spare = block
    } else {
      block.pointee.items.deallocate()
      block.deallocate()
    }
  }

  @inline(__always)
  mutating func append(_ item: ReadyItem) {
    if tail == nil || tailIndex == blockCapacity {
      let block = newBlock()
      if let tail { tail.pointee.next = block } else { head = block; headIndex = 0 }
      tail = block
      tailIndex = 0
    }
    (tail!.pointee.items + tailIndex).initialize(to: item)
    tailIndex += 1
    count += 1
  }

  @inline(__always)
  mutating func popFirst() -> ReadyItem? {
    guard count > 0, let block = head else { return nil }
    let item = (block.pointee.items + headIndex).move()
    headIndex += 1
    count -= 1
    if count == 0 {
      // Empty: start over in this block.
      headIndex = 0
      tailIndex = 0
      if let next = block.pointee.next { retire(next) }
      block.pointee.next = nil
      tail = block
    } else if headIndex == blockCapacity {
      head = block.pointee.next
      headIndex = 0
      retire(block)
    }
    return item
  }

  mutating func removeAll() {
    while popFirst() != nil {}
  }

  /// Frees every block (the queue must be empty).
  mutating func releaseStorage() {
    removeAll()
    for block in [head, spare] {
      guard let block else { continue }
      block.pointee.items.deallocate()
      block.deallocate()
    }
    head = nil
    tail = nil
    spare = nil
  }
}
