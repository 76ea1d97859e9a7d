// Name resolution, transports, protocols and servers (asyncio's
// getaddrinfo, create_connection, Transport, Protocol, create_server, Server).
import AioSwift
import CAioSwift
import Glibc

// MARK: Results that are objects

/// Drops the C reference a future's result holds (an object handle).
let releaseHandleResult: CDestructor = { value in
  _ = ObjectTable.release(UInt64(UInt(bitPattern: value)))
}

/// Finishes `future` with one C reference to `object` as its result.
func setHandleResult<T: ForeignObject>(_ future: AnyFuture, _ object: T, _ type: ObjectType) {
  guard let handle = ObjectTable.export(object, type) else {
    try? future.setError(tableFull())
    return
  }
  do {
    try future.setCResult(UnsafeMutableRawPointer(bitPattern: UInt(handle)), destructor: releaseHandleResult)
  } catch {
    _ = ObjectTable.release(handle)
  }
}

/// A C future bound to a request of the core, handed to C through `out`;
/// `deliver` turns the request's value into the future's result.
func requestFuture<T>(_ loop: Loop, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                      _ start: (@escaping (Result<T, any Error>) -> Void) throws -> any CancellableRequest,
                      deliver: @escaping (AnyFuture, T) -> Void, discard: ((T) -> Void)? = nil) throws {
  guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  try loop.checkUsable()
  let future = RawFuture(loop: loop)
  try loop.bind(future, start, deliver: { deliver(future, $0) }, discard: discard)
  do {
    try give(future, .future, out)
  } catch {
    future.cancel()
    throw error
  }
}

// MARK: Addresses

func socketAddress(_ address: UnsafeRawPointer?, _ length: UInt32) throws -> SocketAddress {
  guard let address, let socketAddress = SocketAddress(bytes: address, length: Int(length)) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "not a socket address")
  }
  return socketAddress
}

/// Copies an address into C's buffer of *length bytes; sets *length.
func copyAddress(_ address: SocketAddress?, _ out: UnsafeMutableRawPointer?,
                 _ length: UnsafeMutablePointer<UInt32>?) throws {
  guard let out, let length else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  guard let address else { throw OSError(errno: ENOTCONN) }
  address.withBytes { bytes in
    out.copyMemory(from: bytes.baseAddress!, byteCount: min(bytes.count, Int(length.pointee)))
    length.pointee = UInt32(bytes.count)
  }
}

private func addressList(_ infos: [AddressInfo]) -> UnsafeMutableRawPointer {
  let list = UnsafeMutablePointer<aios_addrinfo_list_t>.allocate(capacity: 1)
  let items = UnsafeMutablePointer<aios_addrinfo_t>.allocate(capacity: max(1, infos.count))
  for (index, info) in infos.enumerated() {
    var item = aios_addrinfo_t()
    item.family = info.family
    item.socktype = info.socketType
    item.protocol = info.protocolNumber
    item.canonname = info.canonicalName.map { UnsafePointer(strdup($0)) }
    info.address.withBytes { bytes in
      withUnsafeMutableBytes(of: &item.address) { $0.copyMemory(from: bytes) }
      item.length = UInt32(bytes.count)
    }
    (items + index).initialize(to: item)
  }
  list.initialize(to: aios_addrinfo_list_t(count: infos.count, items: items))
  return UnsafeMutableRawPointer(list)
}

@_cdecl("aios_addrinfo_list_free")
public func aios_addrinfo_list_free(_ list: UnsafeMutableRawPointer?) {
  guard let list = list?.assumingMemoryBound(to: aios_addrinfo_list_t.self) else { return }
  for index in 0..<list.pointee.count {
    free(UnsafeMutablePointer(mutating: list.pointee.items[index].canonname))
  }
  list.pointee.items.deallocate()
  list.deallocate()
}

@_cdecl("aios_getaddrinfo")
public func aios_getaddrinfo(_ loop: OpaquePointer?, _ host: UnsafePointer<CChar>?, _ service: UnsafePointer<CChar>?,
                             _ family: Int32, _ socktype: Int32, _ proto: Int32, _ flags: Int32,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let host = string(host), service = string(service)
    try requestFuture(loop, out, {
      try ResolverRequest.addresses(loop: loop, host: host, service: service, family: family, socketType: socktype,
                                    protocolNumber: proto, flags: flags, done: $0)
    }, deliver: { future, infos in
      try? future.setCResult(addressList(infos), destructor: aios_addrinfo_list_free)
    })
  }
}

@_cdecl("aios_nameinfo_free")
public func aios_nameinfo_free(_ info: UnsafeMutableRawPointer?) {
  guard let info = info?.assumingMemoryBound(to: aios_nameinfo_t.self) else { return }
  free(info.pointee.host)
  free(info.pointee.service)
  info.deallocate()
}

@_cdecl("aios_getnameinfo")
public func aios_getnameinfo(_ loop: OpaquePointer?, _ address: UnsafeRawPointer?, _ length: UInt32, _ flags: Int32,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let address = try socketAddress(address, length)
    try requestFuture(loop, out, { try ResolverRequest.name(loop: loop, address: address, flags: flags, done: $0) },
                      deliver: { future, answer in
      let info = UnsafeMutablePointer<aios_nameinfo_t>.allocate(capacity: 1)
      info.initialize(to: aios_nameinfo_t(host: strdup(answer.0), service: strdup(answer.1)))
      try? future.setCResult(UnsafeMutableRawPointer(info), destructor: aios_nameinfo_free)
    })
  }
}

// MARK: Protocols

/// A C protocol table as the core's protocol. It holds one C reference to
/// its transport from connection_made on, which it hands to every callback.
class CProtocol: StreamProtocol {
  var table: aios_protocol_t
  private var transportHandle: UInt64 = 0
  let argument: OwnedArgument

  required init(_ table: aios_protocol_t) {
    self.table = table
    argument = OwnedArgument(table.arg, table.destroy)
  }

  /// The core's protocol for a C table: a batched one, a buffered one
  /// (get_buffer set) or a plain one.
  static func make(_ table: UnsafePointer<aios_protocol_t>?) throws -> any OwnedProtocol {
    let table = try protocolTable(table)
    if table.batched != 0 { return BatchProtocol(table) }
    if table.get_buffer != nil {
      guard table.buffer_updated != nil else {
        throw RuntimeError(code: AIOS_EINVAL.rawValue, "get_buffer without buffer_updated")
      }
      return CBufferedProtocol(table)
    }
    return CProtocol(table)
  }

  deinit {
    if transportHandle != 0 { _ = ObjectTable.release(transportHandle) }
  }

  /// Takes the transport's handle for the callbacks (set_protocol's new one).
  func attach(_ transport: StreamTransport) {
    if transportHandle == 0, let handle = ObjectTable.export(transport, .transport) { transportHandle = handle }
  }

  var transportPointer: OpaquePointer? { pointer(transportHandle) }

  func connectionMade(_ transport: StreamTransport) {
    attach(transport)
    table.connection_made?(transportPointer, table.arg)
  }

  func dataReceived(_ data: UnsafeRawBufferPointer) {
    table.data_received?(transportPointer, data.baseAddress, data.count, table.arg)
  }

  func eofReceived() -> Bool {
    guard let eof = table.eof_received else { return false }
    return eof(transportPointer, table.arg) != 0
  }

  func connectionLost(_ error: (any Error)?) {
    if let lost = table.connection_lost {
      if let error, let handle = exportError(error) {
        lost(transportPointer, pointer(handle), table.arg)
        _ = ObjectTable.release(handle)
      } else {
        lost(transportPointer, nil, table.arg)
      }
    }
    if transportHandle != 0 {
      _ = ObjectTable.release(transportHandle)
      transportHandle = 0
    }
  }

  func pauseWriting() { table.pause_writing?(transportPointer, table.arg) }
  func resumeWriting() { table.resume_writing?(transportPointer, table.arg) }
}

final class CBufferedProtocol: CProtocol, BufferedStreamProtocol {
  func getBuffer(sizeHint: Int) throws -> UnsafeMutableRawBufferPointer {
    var buffer: UnsafeMutableRawPointer?
    var length = 0
    let rc = table.get_buffer!(transportPointer, sizeHint, &buffer, &length, table.arg)
    guard rc == 0 else {
      throw makeError(code: rc < 0 ? rc : AIOS_EUSER.rawValue, message: "get_buffer() failed")
    }
    return UnsafeMutableRawBufferPointer(start: buffer, count: buffer == nil ? 0 : length)
  }

  func bufferUpdated(_ count: Int) { table.buffer_updated!(transportPointer, count, table.arg) }
}

/// A protocol made from a C table, which owns the table's argument.
protocol OwnedProtocol: StreamProtocol {
  var argument: OwnedArgument { get }
  /// Takes the transport's handle for the callbacks (set_protocol's new one).
  func attach(_ transport: StreamTransport)
}
extension OwnedProtocol {
  func attach(_ transport: StreamTransport) {}
}
extension BatchProtocol: OwnedProtocol {}
extension CProtocol: OwnedProtocol {}

/// A copy of a C protocol table: the fields its `size` covers, the rest
/// zero. A table must reach at least `destroy` (the first version).
func protocolTable(_ table: UnsafePointer<aios_protocol_t>?) throws -> aios_protocol_t {
  guard let table else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no protocol") }
  let size = table.pointee.size
  guard size >= MemoryLayout.offset(of: \aios_protocol_t.batched)! else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "protocol size too small")
  }
  var copy = aios_protocol_t()
  withUnsafeMutableBytes(of: &copy) {
    $0.copyMemory(from: UnsafeRawBufferPointer(start: table, count: min(size, MemoryLayout<aios_protocol_t>.size)))
  }
  copy.size = MemoryLayout<aios_protocol_t>.size
  return copy
}

/// A copy of a C protocol table that starts with its `size`, which must
/// cover the whole table (the subprocess and datagram protocols).
func wholeTable<T>(_ table: UnsafePointer<T>?) throws -> T {
  guard let table else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no protocol") }
  guard UnsafeRawPointer(table).load(as: Int.self) >= MemoryLayout<T>.size else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "protocol size too small")
  }
  return table.pointee
}

/// A protocol for one call: the caller keeps its argument if the call fails.
func withProtocol<R>(_ table: UnsafePointer<aios_protocol_t>?, _ body: (any OwnedProtocol) throws -> R) throws -> R {
  let made = try CProtocol.make(table)
  do {
    return try body(made)
  } catch {
    made.argument.disown()
    throw error
  }
}

// MARK: Connecting

func connectOptions(_ options: UnsafePointer<aios_connect_options_t>?) throws -> ConnectOptions {
  var result = ConnectOptions()
  guard let options else { return result }
  guard options.pointee.size >= MemoryLayout<aios_connect_options_t>.size else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "options size too small")
  }
  let given = options.pointee
  result.family = given.family
  result.flags = given.flags
  result.localHost = string(given.local_host)
  result.localPort = Int(given.local_port)
  guard given.happy_eyeballs_delay >= 0, given.happy_eyeballs_delay.isFinite else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "happy_eyeballs_delay must be a number >= 0")
  }
  if given.happy_eyeballs_delay > 0 { result.happyEyeballsDelay = given.happy_eyeballs_delay }
  if given.interleave < 0 { throw RuntimeError(code: AIOS_EINVAL.rawValue, "interleave must be >= 0") }
  if given.interleave > 0 { result.interleave = Int(given.interleave) }
  return result
}

/// A connection's future: its result is the transport.
private func connectionFuture(_ loop: Loop, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                              _ start: (@escaping (Result<StreamTransport, any Error>) -> Void) throws -> any CancellableRequest)
  throws {
  try requestFuture(loop, out, start, deliver: { setHandleResult($0, $1, .transport) }, discard: { $0.abort() })
}

@_cdecl("aios_create_connection")
public func aios_create_connection(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?,
                                   _ host: UnsafePointer<CChar>?, _ port: Int32,
                                   _ options: UnsafePointer<aios_connect_options_t>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let host = string(host)
    let options = try connectOptions(options)
    try withProtocol(table) { made in
      try connectionFuture(loop, out) {
        try Connector.tcp(loop: loop, host: host, port: Int(port), options: options, makeProtocol: { made }, done: $0)
      }
    }
  }
}

@_cdecl("aios_create_unix_connection")
public func aios_create_unix_connection(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?,
                                        _ path: UnsafePointer<CChar>?,
                                        _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let path = string(path) else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProtocol(table) { made in
      try connectionFuture(loop, out) {
        try Connector.unix(loop: loop, path: path, makeProtocol: { made }, done: $0)
      }
    }
  }
}

@_cdecl("aios_connect_accepted_socket")
public func aios_connect_accepted_socket(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?,
                                         _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProtocol(table) { made in
      try connectionFuture(loop, out) {
        try Connector.accepted(loop: loop, fd: fd, makeProtocol: { made }, done: $0)
      }
    }
  }
}

// MARK: Transports

@inline(__always)
func withTransport<R>(_ p: OpaquePointer?, _ body: (StreamTransport) throws -> R) throws -> R {
  try withObject(p, .transport, as: StreamTransport.self, body)
}

/// The pieces of a C vector, checked.
func buffers(_ bufs: UnsafePointer<aios_buf_t>?, _ count: Int) throws -> [UnsafeRawBufferPointer] {
  guard count == 0 || bufs != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  // A size_t of 2^63 or more arrives negative.
  guard count >= 0, count <= 1 << 20 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "too many buffers") }
  return try (0..<count).map { index in
    let piece = bufs![index]
    guard piece.base != nil || piece.length == 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    return UnsafeRawBufferPointer(start: piece.base, count: piece.length)
  }
}

/// `length` bytes at `data`, checked.
func bytes(_ data: UnsafeRawPointer?, _ length: Int) throws -> UnsafeRawBufferPointer {
  guard data != nil || length == 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  guard length >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  return UnsafeRawBufferPointer(start: data, count: length)
}

@_cdecl("aios_transport_write")
public func aios_transport_write(_ transport: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int) -> Int32 {
  status { try withTransport(transport) { try $0.write(try bytes(data, length)) } }
}

@_cdecl("aios_transport_write_nocopy")
public func aios_transport_write_nocopy(_ transport: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int,
                                        _ release: aios_destructor_fn?, _ releaseArg: UnsafeMutableRawPointer?) -> Int32 {
  status {
    try withTransport(transport) { transport in
      let lender = OwnedArgument(releaseArg, release)
      do {
        try transport.write(lending: try bytes(data, length), lender: lender)
      } catch {
        lender.disown()
        throw error
      }
    }
  }
}

@_cdecl("aios_transport_writev")
public func aios_transport_writev(_ transport: OpaquePointer?, _ bufs: UnsafePointer<aios_buf_t>?, _ count: Int) -> Int32 {
  status { try withTransport(transport) { try $0.write(vector: try buffers(bufs, count)) } }
}

@_cdecl("aios_transport_write_eof")
public func aios_transport_write_eof(_ transport: OpaquePointer?) -> Int32 {
  status { try withTransport(transport) { $0.writeEOF() } }
}

@_cdecl("aios_transport_can_write_eof")
public func aios_transport_can_write_eof(_ transport: OpaquePointer?) -> Int32 {
  count { try withTransport(transport) { $0.canWriteEOF ? 1 : 0 } }
}

@_cdecl("aios_transport_close")
public func aios_transport_close(_ transport: OpaquePointer?) -> Int32 {
  status { try withTransport(transport) { $0.close() } }
}

@_cdecl("aios_transport_abort")
public func aios_transport_abort(_ transport: OpaquePointer?) -> Int32 {
  status { try withTransport(transport) { $0.abort() } }
}

@_cdecl("aios_transport_is_closing")
public func aios_transport_is_closing(_ transport: OpaquePointer?) -> Int32 {
  count { try withTransport(transport) { $0.isClosing ? 1 : 0 } }
}

@_cdecl("aios_transport_get_error")
public func aios_transport_get_error(_ transport: OpaquePointer?, _ error: UnsafeMutablePointer<Int32>?) -> Int32 {
  status {
    guard let error else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    error.pointee = try withTransport(transport) { $0.closingError.map(statusCode(of:)) ?? 0 }
  }
}

@_cdecl("aios_transport_pause_reading")
public func aios_transport_pause_reading(_ transport: OpaquePointer?) -> Int32 {
  status { try withTransport(transport) { $0.pauseReading() } }
}

@_cdecl("aios_transport_resume_reading")
public func aios_transport_resume_reading(_ transport: OpaquePointer?) -> Int32 {
  status { try withTransport(transport) { $0.resumeReading() } }
}

@_cdecl("aios_transport_is_reading")
public func aios_transport_is_reading(_ transport: OpaquePointer?) -> Int32 {
  count { try withTransport(transport) { $0.isReading ? 1 : 0 } }
}

@_cdecl("aios_transport_get_write_buffer_size")
public func aios_transport_get_write_buffer_size(_ transport: OpaquePointer?) -> Int64 {
  do { return Int64(try withTransport(transport) { $0.writeBufferSize }) } catch { return Int64(statusCode(of: error)) }
}

@_cdecl("aios_transport_set_write_buffer_limits")
public func aios_transport_set_write_buffer_limits(_ transport: OpaquePointer?, _ high: Int64, _ low: Int64) -> Int32 {
  status {
    try withTransport(transport) {
      try $0.setWriteBufferLimits(high: high < 0 ? nil : Int(clamping: high), low: low < 0 ? nil : Int(clamping: low))
    }
  }
}

@_cdecl("aios_transport_get_write_buffer_limits")
public func aios_transport_get_write_buffer_limits(_ transport: OpaquePointer?, _ low: UnsafeMutablePointer<Int>?,
                                                   _ high: UnsafeMutablePointer<Int>?) -> Int32 {
  status {
    try withTransport(transport) {
      low?.pointee = $0.lowWater
      high?.pointee = $0.highWater
    }
  }
}

@_cdecl("aios_transport_get_sockname")
public func aios_transport_get_sockname(_ transport: OpaquePointer?, _ address: UnsafeMutableRawPointer?,
                                        _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
  status { try withTransport(transport) { try copyAddress($0.socketName, address, length) } }
}

@_cdecl("aios_transport_get_peername")
public func aios_transport_get_peername(_ transport: OpaquePointer?, _ address: UnsafeMutableRawPointer?,
                                        _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
  status { try withTransport(transport) { try copyAddress($0.peerName, address, length) } }
}

@_cdecl("aios_transport_get_fd")
public func aios_transport_get_fd(_ transport: OpaquePointer?) -> Int32 {
  count { try withTransport(transport) { Int($0.fileDescriptor ?? -EBADF) } }
}

@_cdecl("aios_transport_set_protocol")
public func aios_transport_set_protocol(_ transport: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?) -> Int32 {
  status {
    try withTransport(transport) { transport in
      try withProtocol(table) { made in
        try transport.setProtocol(made)
        made.attach(transport)
      }
    }
  }
}

@_cdecl("aios_transport_get_protocol")
public func aios_transport_get_protocol(_ transport: OpaquePointer?, _ table: UnsafeMutablePointer<aios_protocol_t>?) -> Int32 {
  status {
    try withTransport(transport) { transport in
      guard let table else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      guard let current = transport.streamProtocol as? CProtocol else {
        throw InvalidStateError("the transport has no C protocol")
      }
      let size = min(table.pointee.size, MemoryLayout<aios_protocol_t>.size)
      var copy = current.table
      copy.size = size
      withUnsafeBytes(of: &copy) { UnsafeMutableRawPointer(table).copyMemory(from: $0.baseAddress!, byteCount: size) }
    }
  }
}

@_cdecl("aios_transport_get_loop")
public func aios_transport_get_loop(_ transport: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withTransport(transport) { $0.loop }, .loop, out)
  }
}

@_cdecl("aios_transport_ref")
public func aios_transport_ref(_ transport: OpaquePointer?) -> Int32 { refObject(transport, .transport) }

@_cdecl("aios_transport_unref")
public func aios_transport_unref(_ transport: OpaquePointer?) -> Int32 { unrefObject(transport, .transport) }

@_cdecl("aios_connect_read_pipe")
public func aios_connect_read_pipe(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?,
                                   _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  connectPipe(loop, table, fd, writing: false, out)
}

@_cdecl("aios_connect_write_pipe")
public func aios_connect_write_pipe(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?,
                                    _ fd: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  connectPipe(loop, table, fd, writing: true, out)
}

private func connectPipe(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_protocol_t>?, _ fd: Int32,
                         writing: Bool, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProtocol(table) { made in
      try connectionFuture(loop, out) {
        try Connector.pipe(loop: loop, fd: fd, writing: writing, makeProtocol: { made }, done: $0)
      }
    }
  }
}

// MARK: Servers

/// A C protocol factory; its argument goes with the last closure holding it.
final class CFactory {
  let function: aios_protocol_factory_fn
  let argument: OwnedArgument

  init(_ function: aios_protocol_factory_fn, _ argument: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?) {
    self.function = function
    self.argument = OwnedArgument(argument, destructor)
  }

  /// A protocol for a new connection, or nil when the factory refuses it.
  func make() throws -> (any StreamProtocol)? {
    var table = aios_protocol_t()
    table.size = MemoryLayout<aios_protocol_t>.size
    guard function(argument.value, &table) == 0 else { return nil }
    return try CProtocol.make(&table)
  }
}

func serverOptions(_ options: UnsafePointer<aios_server_options_t>?) throws -> ServerOptions {
  var result = ServerOptions()
  guard let options else { return result }
  // Fields added at the end are zero for a caller built before them.
  guard options.pointee.size >= MemoryLayout.offset(of: \aios_server_options_t.keep_socket_file)! else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "options size too small")
  }
  var given = aios_server_options_t()
  withUnsafeMutableBytes(of: &given) {
    $0.copyMemory(from: UnsafeRawBufferPointer(start: options,
                                               count: min(options.pointee.size, MemoryLayout<aios_server_options_t>.size)))
  }
  result.family = given.family
  result.flags = given.flags
  guard given.backlog >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "backlog must be >= 0") }
  result.backlog = given.backlog
  result.reuseAddress = given.reuse_address >= 0
  result.reusePort = given.reuse_port > 0
  result.startServing = given.start_serving >= 0
  // A size_t of 2^63 or more arrives negative.
  guard given.host_count == 0 || given.hosts != nil, given.host_count >= 0, given.host_count <= 1024 else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad hosts")
  }
  for index in 0..<given.host_count {
    guard let host = given.hosts![index] else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "a NULL host") }
    result.moreHosts.append(String(cString: host))
  }
  if given.has_sock != 0 { result.socket = given.sock }
  result.cleanupSocket = given.keep_socket_file == 0
  return result
}

/// A server's future: its result is the server.
func serverFuture(_ loop: Loop, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                  _ start: (@escaping (Result<Server, any Error>) -> Void) throws -> any CancellableRequest) throws {
  try requestFuture(loop, out, start, deliver: { setHandleResult($0, $1, .server) }, discard: { $0.close() })
}

/// Runs `body` with a factory that gives back its argument if the call fails.
private func withFactory<R>(_ function: aios_protocol_factory_fn?, _ arg: UnsafeMutableRawPointer?,
                            _ destructor: aios_destructor_fn?, _ body: (CFactory) throws -> R) throws -> R {
  guard let function else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no protocol factory") }
  let factory = CFactory(function, arg, destructor)
  do {
    return try body(factory)
  } catch {
    factory.argument.disown()
    throw error
  }
}

@_cdecl("aios_create_server")
public func aios_create_server(_ loop: OpaquePointer?, _ function: aios_protocol_factory_fn?,
                               _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                               _ host: UnsafePointer<CChar>?, _ port: Int32,
                               _ options: UnsafePointer<aios_server_options_t>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let options = try serverOptions(options)
    let hosts = (string(host).map { [$0] } ?? []) + options.moreHosts
    try withFactory(function, arg, destructor) { factory in
      try serverFuture(loop, out) {
        try Server.tcp(loop: loop, hosts: hosts, port: Int(port), options: options, makeProtocol: factory.make, done: $0)
      }
    }
  }
}

@_cdecl("aios_create_unix_server")
public func aios_create_unix_server(_ loop: OpaquePointer?, _ function: aios_protocol_factory_fn?,
                                    _ arg: UnsafeMutableRawPointer?, _ destructor: aios_destructor_fn?,
                                    _ path: UnsafePointer<CChar>?, _ options: UnsafePointer<aios_server_options_t>?,
                                    _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    let options = try serverOptions(options)
    let path = string(path)
    try withFactory(function, arg, destructor) { factory in
      try serverFuture(loop, out) {
        try Server.unix(loop: loop, path: path, options: options, makeProtocol: factory.make, done: $0)
      }
    }
  }
}

@inline(__always)
func withServer<R>(_ p: OpaquePointer?, _ body: (Server) throws -> R) throws -> R {
  try withObject(p, .server, as: Server.self, body)
}

@_cdecl("aios_server_close")
public func aios_server_close(_ server: OpaquePointer?) -> Int32 { status { try withServer(server) { $0.close() } } }

@_cdecl("aios_server_close_clients")
public func aios_server_close_clients(_ server: OpaquePointer?) -> Int32 {
  status { try withServer(server) { $0.closeClients() } }
}

@_cdecl("aios_server_abort_clients")
public func aios_server_abort_clients(_ server: OpaquePointer?) -> Int32 {
  status { try withServer(server) { $0.abortClients() } }
}

@_cdecl("aios_server_wait_closed")
public func aios_server_wait_closed(_ server: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withServer(server) { try $0.closedFuture() }, .future, out)
  }
}

@_cdecl("aios_server_start_serving")
public func aios_server_start_serving(_ server: OpaquePointer?) -> Int32 {
  status { try withServer(server) { try $0.startServing() } }
}

@_cdecl("aios_server_serve_forever")
public func aios_server_serve_forever(_ server: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withServer(server) { server in
      let future = try server.serveForeverFuture()
      do {
        try give(future, .future, out)
      } catch {
        future.cancel()
        throw error
      }
    }
  }
}

@_cdecl("aios_server_is_serving")
public func aios_server_is_serving(_ server: OpaquePointer?) -> Int32 {
  count { try withServer(server) { $0.isServing ? 1 : 0 } }
}

@_cdecl("aios_server_socket_count")
public func aios_server_socket_count(_ server: OpaquePointer?) -> Int32 {
  count { try withServer(server) { $0.sockets.count } }
}

@_cdecl("aios_server_get_sockname")
public func aios_server_get_sockname(_ server: OpaquePointer?, _ index: Int, _ address: UnsafeMutableRawPointer?,
                                     _ length: UnsafeMutablePointer<UInt32>?) -> Int32 {
  status {
    try withServer(server) { server in
      guard index >= 0, index < server.sockets.count else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
      try copyAddress(server.sockets[index], address, length)
    }
  }
}

@_cdecl("aios_server_get_loop")
public func aios_server_get_loop(_ server: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withServer(server) { $0.loop }, .loop, out)
  }
}

@_cdecl("aios_server_ref")
public func aios_server_ref(_ server: OpaquePointer?) -> Int32 { refObject(server, .server) }

@_cdecl("aios_server_unref")
public func aios_server_unref(_ server: OpaquePointer?) -> Int32 { unrefObject(server, .server) }
