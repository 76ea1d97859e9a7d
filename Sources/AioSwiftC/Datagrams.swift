// Datagram endpoints (asyncio's create_datagram_endpoint, DatagramTransport,
// DatagramProtocol) and descriptor watchers (add_reader, add_writer).
import AioSwift
import CAioSwift
import Glibc

extension DatagramTransport: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}

/// A C datagram protocol table as the core's protocol. It holds one C
/// reference to its endpoint from connection_made to connection_lost.
private final class CDatagramProtocol: DatagramProtocol {
  let table: aios_datagram_protocol_t
  let argument: OwnedArgument
  private var reference = CallbackReference()

  init(_ table: aios_datagram_protocol_t) {
    self.table = table
    argument = OwnedArgument(table.arg, table.destroy)
  }

  deinit { reference.drop() }

  static func make(_ table: UnsafePointer<aios_datagram_protocol_t>?) throws -> CDatagramProtocol {
    CDatagramProtocol(try wholeTable(table))
  }

  private var endpoint: OpaquePointer? { reference.object }

  func connectionMade(_ transport: DatagramTransport) {
    reference.take(transport, .datagram)
    table.connection_made?(endpoint, table.arg)
  }

  func datagramReceived(_ data: UnsafeRawBufferPointer, from address: SocketAddress?) {
    guard let received = table.datagram_received else { return }
    if let address {
      address.withBytes { received(endpoint, data.baseAddress, data.count, $0.baseAddress, UInt32($0.count), table.arg) }
    } else {
      received(endpoint, data.baseAddress, data.count, nil, 0, table.arg)
    }
  }

  func errorReceived(_ error: any Error) {
    guard let received = table.error_received else { return }
    withLentError(error) { received(endpoint, $0, table.arg) }
  }

  func connectionLost(_ error: (any Error)?) {
    if let lost = table.connection_lost { withLentError(error) { lost(endpoint, $0, table.arg) } }
    reference.drop()
  }

  func pauseWriting() { table.pause_writing?(endpoint, table.arg) }
  func resumeWriting() { table.resume_writing?(endpoint, table.arg) }
}

/// Starts an endpoint with a C protocol; the caller keeps the protocol's
/// argument when this fails.
private func endpointFuture(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_datagram_protocol_t>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?,
                            _ start: (Loop, @escaping () -> any DatagramProtocol,
                                      @escaping (Result<DatagramTransport, any Error>) -> Void) throws
                              -> DatagramEndpoint) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let made = try CDatagramProtocol.make(table)
    do {
      try requestFuture(loop, out, { try start(loop, { made }, $0) },
                        deliver: { setHandleResult($0, $1, .datagram) }, discard: { $0.abort() })
    } catch {
      made.argument.disown()
      throw error
    }
  }
}

private func datagramOptions(_ options: UnsafePointer<aios_datagram_options_t>?) throws -> DatagramOptions {
  var result = DatagramOptions()
  guard let options else { return result }
  guard options.pointee.size >= MemoryLayout<aios_datagram_options_t>.size else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "options size too small")
  }
  result.family = options.pointee.family
  result.protocolNumber = options.pointee.proto
  result.flags = options.pointee.flags
  result.reusePort = options.pointee.reuse_port != 0
  result.allowBroadcast = options.pointee.allow_broadcast != 0
  return result
}

@_cdecl("aios_create_datagram_endpoint")
public func aios_create_datagram_endpoint(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_datagram_protocol_t>?,
                                          _ localHost: UnsafePointer<CChar>?, _ localPort: Int32,
                                          _ remoteHost: UnsafePointer<CChar>?, _ remotePort: Int32,
                                          _ options: UnsafePointer<aios_datagram_options_t>?,
                                          _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  let local = localPort < 0 ? nil : (string(localHost), Int(localPort))
  let remote = remotePort < 0 ? nil : (string(remoteHost), Int(remotePort))
  return endpointFuture(loop, table, out) { loop, makeProtocol, done in
    try DatagramEndpoint.inet(loop: loop, local: local, remote: remote, options: try datagramOptions(options),
                              makeProtocol: makeProtocol, done: done)
  }
}

@_cdecl("aios_create_unix_datagram_endpoint")
public func aios_create_unix_datagram_endpoint(_ loop: OpaquePointer?,
                                               _ table: UnsafePointer<aios_datagram_protocol_t>?,
                                               _ localPath: UnsafePointer<CChar>?, _ remotePath: UnsafePointer<CChar>?,
                                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  endpointFuture(loop, table, out) { loop, makeProtocol, done in
    try DatagramEndpoint.unix(loop: loop, local: string(localPath), remote: string(remotePath),
                              makeProtocol: makeProtocol, done: done)
  }
}

@_cdecl("aios_datagram_from_socket")
public func aios_datagram_from_socket(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_datagram_protocol_t>?,
                                      _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  endpointFuture(loop, table, out) { loop, makeProtocol, done in
    try DatagramEndpoint.socket(loop: loop, fd: fd, makeProtocol: makeProtocol, done: done)
  }
}

@inline(__always)
private func withDatagram<R>(_ p: OpaquePointer?, _ body: (DatagramTransport) throws -> R) throws -> R {
  try withObject(p, .datagram, as: DatagramTransport.self, body)
}

@_cdecl("aios_datagram_sendto")
public func aios_datagram_sendto(_ datagram: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int,
                                 _ address: UnsafeRawPointer?, _ addressLength: UInt32) -> Int32 {
  status {
    try withDatagram(datagram) { transport in
      let target = try address.map { try socketAddress($0, addressLength) }
      try transport.sendto(try bytes(data, length), address: target)
    }
  }
}

@_cdecl("aios_datagram_close")
public func aios_datagram_close(_ datagram: OpaquePointer?) -> Int32 {
  status { try withDatagram(datagram) { $0.close() } }
}

@_cdecl("aios_datagram_abort")
public func aios_datagram_abort(_ datagram: OpaquePointer?) -> Int32 {
  status { try withDatagram(datagram) { $0.abort() } }
}

@_cdecl("aios_datagram_is_closing")
public func aios_datagram_is_closing(_ datagram: OpaquePointer?) -> Int32 {
  count { try withDatagram(datagram) { $0.isClosing ? 1 : 0 } }
}

@_cdecl("aios_datagram_get_write_buffer_size")
public func aios_datagram_get_write_buffer_size(_ datagram: OpaquePointer?) -> Int64 {
  do {
    return Int64(try withDatagram(datagram) { $0.writeBufferSize })
  } catch {
    return Int64(statusCode(of: error))
  }
}

@_cdecl("aios_datagram_set_write_buffer_limits")
public func aios_datagram_set_write_buffer_limits(_ datagram: OpaquePointer?, _ high: Int64, _ low: Int64) -> Int32 {
  status {
    try withDatagram(datagram) {
      try $0.setWriteBufferLimits(high: high < 0 ? nil : Int(clamping: high), low: low < 0 ? nil : Int(clamping: low))
    }
  }
}

@_cdecl("aios_datagram_get_sockname")
public func aios_datagram_get_sockname(_ datagram: OpaquePointer?, _ address: UnsafeMutableRawPointer?,
                                       _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
  status { try withDatagram(datagram) { try copyAddress($0.socketName, address, length) } }
}

@_cdecl("aios_datagram_get_peername")
public func aios_datagram_get_peername(_ datagram: OpaquePointer?, _ address: UnsafeMutableRawPointer?,
                                       _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
  status { try withDatagram(datagram) { try copyAddress($0.peerName, address, length) } }
}

@_cdecl("aios_datagram_get_fd")
public func aios_datagram_get_fd(_ datagram: OpaquePointer?) -> Int32 {
  count {
    try withDatagram(datagram) { transport in
      guard transport.fileDescriptor >= 0 else { throw OSError(errno: EBADF) }
      return Int(transport.fileDescriptor)
    }
  }
}

@_cdecl("aios_datagram_get_loop")
public func aios_datagram_get_loop(_ datagram: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withDatagram(datagram) { $0.loop }, .loop, out)
  }
}

@_cdecl("aios_datagram_ref")
public func aios_datagram_ref(_ datagram: OpaquePointer?) -> Int32 { refObject(datagram, .datagram) }

@_cdecl("aios_datagram_unref")
public func aios_datagram_unref(_ datagram: OpaquePointer?) -> Int32 { unrefObject(datagram, .datagram) }

// MARK: Watchers

private func addWatcher(_ loop: OpaquePointer?, _ fd: Int32, _ callback: aios_callback_fn?,
                        _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?, reading: Bool) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let callback else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no callback") }
    let argument = OwnedArgument(arg, destructor)
    let body = { [argument] in callback(argument.value) }
    do {
      if reading { try loop.addReader(fd, body) } else { try loop.addWriter(fd, body) }
    } catch {
      argument.disown()
      throw error
    }
  }
}

@_cdecl("aios_loop_add_reader")
public func aios_loop_add_reader(_ loop: OpaquePointer?, _ fd: Int32, _ callback: aios_callback_fn?,
                                 _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?) -> Int32 {
  addWatcher(loop, fd, callback, arg, destructor, reading: true)
}

@_cdecl("aios_loop_add_writer")
public func aios_loop_add_writer(_ loop: OpaquePointer?, _ fd: Int32, _ callback: aios_callback_fn?,
                                 _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?) -> Int32 {
  addWatcher(loop, fd, callback, arg, destructor, reading: false)
}

@_cdecl("aios_loop_remove_reader")
public func aios_loop_remove_reader(_ loop: OpaquePointer?, _ fd: Int32) -> Int32 {
  count { try ownLoop(loop).removeReader(fd) ? 1 : 0 }
}

@_cdecl("aios_loop_remove_writer")
public func aios_loop_remove_writer(_ loop: OpaquePointer?, _ fd: Int32) -> Int32 {
  count { try ownLoop(loop).removeWriter(fd) ? 1 : 0 }
}
