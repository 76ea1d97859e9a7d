// Socket operations on a socket the caller owns (asyncio's sock_* methods)
// and sendfile on a transport.
import AioSwift
import CAioSwift
import Glibc

/// Hands C the operation's future through `out`; an operation that cannot
/// be handed out is cancelled (it then never touches the socket again).
private func giveSocketFuture(_ future: SocketFuture, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
  do {
    try give(future, .future, out)
  } catch {
    future.cancel()
    throw error
  }
}

/// A size_t count, checked (one of 2^63 or more arrives negative).
private func byteCount(_ n: Int) throws -> Int {
  guard n >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "count out of range") }
  return n
}

private func socketCall(_ loop: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                        _ start: (Loop) throws -> SocketFuture) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try giveSocketFuture(try start(loop), out)
  }
}

/// Fills an aios_received_t at `block`.
private func initReceived(_ block: UnsafeMutableRawPointer, _ count: Int, _ data: UnsafeMutablePointer<UInt8>?,
                          _ address: SocketAddress?) {
  let received = block.bindMemory(to: aios_received_t.self, capacity: 1)
  received.initialize(to: aios_received_t())
  received.pointee.length = count
  received.pointee.data = data
  address?.withBytes { bytes in
    withUnsafeMutableBytes(of: &received.pointee.address) { $0.copyMemory(from: bytes) }
    received.pointee.address_length = UInt32(bytes.count)
  }
}

@_cdecl("aios_received_free")
public func aios_received_free(_ received: UnsafeMutableRawPointer?) { free(received) }

/// Reads into a new block per call: an aios_bytes_t or, with the sender,
/// an aios_received_t.
private func receiveNew(_ loop: Loop, _ fd: Int32, _ n: Int, sender: Bool) throws -> SocketFuture {
  try loop.checkSocketArgument(fd)
  let capacity = receiveCapacity(fd, try byteCount(n))
  let future = SocketFuture(loop: loop)
  try loop.startSocketOperation(fd, reading: true, future) {
    let header = sender ? MemoryLayout<aios_received_t>.stride : MemoryLayout<aios_bytes_t>.stride
    guard let block = malloc(header + capacity + 1) else { throw RuntimeError(code: AIOS_ENOMEM.rawValue) }
    let data = (block + header).assumingMemoryBound(to: UInt8.self)
    let outcome: (count: Int, address: SocketAddress?)?
    do {
      outcome = try receiveCall(fd, into: UnsafeMutableRawBufferPointer(start: data, count: capacity), sender: sender)
    } catch {
      free(block)
      throw error
    }
    guard let (count, address) = outcome else {
      free(block)
      return false
    }
    data[count] = 0
    if sender {
      initReceived(block, count, data, address)
    } else {
      block.bindMemory(to: aios_bytes_t.self, capacity: 1).initialize(to: aios_bytes_t(length: count, data: data))
    }
    future.complete(block, destructor: { free($0) })
    return true
  }
  return future
}

@_cdecl("aios_sock_recv")
public func aios_sock_recv(_ loop: OpaquePointer?, _ fd: Int32, _ n: Int,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { try receiveNew($0, fd, n, sender: false) }
}

@_cdecl("aios_sock_recvfrom")
public func aios_sock_recvfrom(_ loop: OpaquePointer?, _ fd: Int32, _ n: Int,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { try receiveNew($0, fd, n, sender: true) }
}

/// The caller's buffer, checked.
private func callerBuffer(_ buffer: UnsafeMutableRawPointer?, _ n: Int) throws -> UnsafeMutableRawBufferPointer {
  guard buffer != nil || n == 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  return UnsafeMutableRawBufferPointer(start: buffer, count: try byteCount(n))
}

@_cdecl("aios_sock_recv_into")
public func aios_sock_recv_into(_ loop: OpaquePointer?, _ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ n: Int,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { loop in
    try loop.startReceive(fd, into: try callerBuffer(buffer, n), sender: false) { future, count, _ in
      future.complete(UnsafeMutableRawPointer(bitPattern: count))
    }
  }
}

@_cdecl("aios_sock_recvfrom_into")
public func aios_sock_recvfrom_into(_ loop: OpaquePointer?, _ fd: Int32, _ buffer: UnsafeMutableRawPointer?,
                                    _ n: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { loop in
    let memory = try callerBuffer(buffer, n)
    return try loop.startReceive(fd, into: memory, sender: true) { future, count, address in
      guard let block = malloc(MemoryLayout<aios_received_t>.stride) else {
        future.fail(RuntimeError(code: AIOS_ENOMEM.rawValue))
        return
      }
      initReceived(block, count, memory.baseAddress?.assumingMemoryBound(to: UInt8.self), address)
      future.complete(block, destructor: { free($0) })
    }
  }
}

@_cdecl("aios_sock_sendall")
public func aios_sock_sendall(_ loop: OpaquePointer?, _ fd: Int32, _ data: UnsafeRawPointer?, _ length: Int,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { try $0.startSendAll(fd, try bytes(data, length)) }
}

@_cdecl("aios_sock_sendto")
public func aios_sock_sendto(_ loop: OpaquePointer?, _ fd: Int32, _ data: UnsafeRawPointer?, _ length: Int,
                             _ address: UnsafeRawPointer?, _ addressLength: UInt32,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { try $0.startSendTo(fd, try bytes(data, length), to: try socketAddress(address, addressLength)) }
}

@_cdecl("aios_sock_connect")
public func aios_sock_connect(_ loop: OpaquePointer?, _ fd: Int32, _ address: UnsafeRawPointer?,
                              _ addressLength: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { try $0.startConnect(fd, to: try socketAddress(address, addressLength)) }
}

/// Closes an accepted connection nobody took.
private let closeAccepted: CDestructor = { value in
  _ = Glibc.close(Int32(truncatingIfNeeded: Int(bitPattern: value)))
}

@_cdecl("aios_sock_accept")
public func aios_sock_accept(_ loop: OpaquePointer?, _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { loop in
    try loop.startAccept(fd) { future, connection, _ in
      future.complete(UnsafeMutableRawPointer(bitPattern: Int(connection)), destructor: closeAccepted)
    }
  }
}

/// C's count (-1: to the end of the file) and fallback, checked.
private func sendfileArguments(_ offset: Int64, _ count: Int64, _ fallback: Int32) throws
  -> (offset: Int, count: Int?, fallback: SendfileFallback)
{
  guard let mode = SendfileFallback(rawValue: fallback) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "fallback must be AIOS_SENDFILE_FALLBACK_REFUSED, _ALLOWED or _ALWAYS")
  }
  guard count == -1 || count > 0 else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "count must be a positive integer or -1 (got \(count))")
  }
  return (Int(offset), count == -1 ? nil : Int(count), mode)
}

@_cdecl("aios_sock_sendfile")
public func aios_sock_sendfile(_ loop: OpaquePointer?, _ fd: Int32, _ file: Int32, _ offset: Int64, _ count: Int64,
                               _ fallback: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  socketCall(loop, out) { loop in
    let arguments = try sendfileArguments(offset, count, fallback)
    return try loop.startSockSendfile(fd, file: file, offset: arguments.offset, count: arguments.count,
                                      fallback: arguments.fallback)
  }
}

@_cdecl("aios_transport_sendfile")
public func aios_transport_sendfile(_ transport: OpaquePointer?, _ file: Int32, _ offset: Int64, _ count: Int64,
                                    _ fallback: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    try withTransport(transport) { transport in
      guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      let arguments = try sendfileArguments(offset, count, fallback)
      let future = try transport.loop.startSendfile(transport, file: file, offset: arguments.offset,
                                                    count: arguments.count, fallback: arguments.fallback)
      try giveSocketFuture(future, out)
    }
  }
}
