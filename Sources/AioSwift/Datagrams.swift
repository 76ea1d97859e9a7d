// Datagrams: asyncio's create_datagram_endpoint, DatagramTransport and
// DatagramProtocol (selector_events._SelectorDatagramTransport), on a libuv
// poll handle over the socket, so that Unix datagram sockets work as UDP does.
internal import CAioSwift
internal import CLibUV
import Glibc

/// asyncio.DatagramProtocol.
public protocol DatagramProtocol: AnyObject {
  func connectionMade(_ transport: DatagramTransport)
  /// One datagram: `data` is valid for the call only; `address` is the
  /// sender's (nil for an unnamed Unix socket).
  func datagramReceived(_ data: UnsafeRawBufferPointer, from address: SocketAddress?)
  /// A send or receive failed (an ICMP error on a connected socket is
  /// ECONNREFUSED here); the transport stays open.
  func errorReceived(_ error: any Error)
  func connectionLost(_ error: (any Error)?)
  func pauseWriting()
  func resumeWriting()
}

extension DatagramProtocol {
  public func connectionMade(_ transport: DatagramTransport) {}
  public func datagramReceived(_ data: UnsafeRawBufferPointer, from address: SocketAddress?) {}
  public func errorReceived(_ error: any Error) {}
  public func connectionLost(_ error: (any Error)?) {}
  public func pauseWriting() {}
  public func resumeWriting() {}
}

/// asyncio's create_datagram_endpoint options.
public struct DatagramOptions: Sendable {
  public var family: Int32 = 0
  public var protocolNumber: Int32 = 0
  public var flags: Int32 = 0
  public var reusePort = false
  public var allowBroadcast = false
  public init() {}
}

/// asyncio's max_size: the largest datagram read.
let datagramMaxSize = 256 * 1024

/// asyncio's _SelectorDatagramTransport.
public final class DatagramTransport: CustomStringConvertible {
  public let loop: Loop
  /// The socket, owned; -1 once closed.
  public private(set) var fileDescriptor: Int32
  /// The address sendto goes to when none is given (a connected socket).
  public let peer: SocketAddress?
  private let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
  private var events: Int32 = 0
  private var datagramProtocol: (any DatagramProtocol)?
  private var buffer: [(bytes: UnsafeMutableRawBufferPointer, address: SocketAddress?)] = []
  /// asyncio counts 8 bytes of header per datagram buffered.
  public private(set) var writeBufferSize = 0
  private var flow = WriteFlowControl()
  public var highWater: Int { flow.high }
  public var lowWater: Int { flow.low }
  public private(set) var isClosing = false
  private var connectionLostCount = 0
  private var made = false
  private var keepAlive: Unmanaged<DatagramTransport>?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  /// Wraps a non-blocking datagram socket, which the transport then owns.
  init(loop: Loop, fd: Int32, peer: SocketAddress?) throws {
    self.loop = loop
    self.peer = peer
    fileDescriptor = fd
    let rc = uv_poll_init(loop.uv, poll, fd)
    guard rc == 0 else {
      poll.deallocate()
      throw uvError(rc)
    }
    poll.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    LiveObjects.transports.add(1, ordering: .relaxed)
    keepAlive = Unmanaged.passRetained(self)
    loop.ioOpened(self) { [unowned self] _ in self.forceClose(nil, now: true) }
  }

  deinit {
    for item in buffer { item.bytes.deallocate() }
    LiveObjects.transports.subtract(1, ordering: .relaxed)
  }

  /// connection_made, then reading (asyncio calls both soon).
  fileprivate func start(_ datagramProtocol: any DatagramProtocol) {
    self.datagramProtocol = datagramProtocol
    made = true
    datagramProtocol.connectionMade(self)
    if !isClosing { watch(reading: true) }
  }

  private var reading = false
  private var writing = false

  private func watch(reading: Bool? = nil, writing: Bool? = nil) {
    if let reading { self.reading = reading }
    if let writing { self.writing = writing }
    guard fileDescriptor >= 0 else { return }
    let wanted = (self.reading ? Int32(UV_READABLE.rawValue) : 0) | (self.writing ? Int32(UV_WRITABLE.rawValue) : 0)
    guard wanted != events else { return }
    events = wanted
    if wanted == 0 { uv_poll_stop(poll) } else { uv_poll_start(poll, wanted, datagramReady) }
  }

  fileprivate func ready(status: Int32, events ready: Int32) {
    if status < 0 {
      // libuv stops a poll handle on POLLERR (an ICMP error on a connected
      // socket): the error is read as asyncio's recvfrom meets it, and the
      // watch starts again.
      events = 0
      readReady()
      if fileDescriptor >= 0 { watch() }
      return
    }
    if ready & Int32(UV_READABLE.rawValue) != 0 { readReady() }
    if ready & Int32(UV_WRITABLE.rawValue) != 0, fileDescriptor >= 0 { sendReady() }
  }

  private func readReady() {
    guard connectionLostCount == 0, fileDescriptor >= 0 else { return }
    let arena = loop.readArena
    var address = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let count = withUnsafeMutablePointer(to: &address) { storage in
      storage.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        recvfrom(fileDescriptor, arena.baseAddress, min(arena.count, datagramMaxSize), 0, $0, &length)
      }
    }
    if count < 0 {
      if errno == EAGAIN || errno == EINTR { return }
      datagramProtocol?.errorReceived(OSError(errno: errno))
      return
    }
    let sender = length > MemoryLayout<sa_family_t>.size
      ? withUnsafeBytes(of: &address) { SocketAddress(bytes: $0.baseAddress!, length: Int(length)) } : nil
    datagramProtocol?.datagramReceived(UnsafeRawBufferPointer(start: arena.baseAddress, count: count), from: sender)
  }

  /// One datagram out: nil when sent, else the errno.
  private func send(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress?) -> Int32? {
    let sent: Int
    if let address, peer == nil {
      sent = address.withSockaddr { Glibc.sendto(fileDescriptor, bytes.baseAddress, bytes.count, 0, $0, address.length) }
    } else {
      sent = Glibc.send(fileDescriptor, bytes.baseAddress, bytes.count, 0)
    }
    return sent < 0 ? errno : nil
  }

  /// asyncio's sendto: sent at once when nothing waits, else buffered (a
  /// full buffer pauses the protocol's writing). A connected transport
  /// sends to its peer: another address is refused.
  public func sendto(_ data: UnsafeRawBufferPointer, address: SocketAddress? = nil) throws {
    if let peer, let address, address != peer {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "Invalid address: must be None or \(peer)")
    }
    guard peer != nil || address != nil else {
      throw OSError(errno: EDESTADDRREQ)
    }
    if connectionLostCount > 0 || fileDescriptor < 0 {
      connectionLostCount += 1
      return
    }
    if buffer.isEmpty {
      guard let failed = send(data, to: address) else { return }
      if failed != EAGAIN && failed != EINTR {
        datagramProtocol?.errorReceived(OSError(errno: failed))
        return
      }
      watch(writing: true)
    }
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 1)
    if data.count > 0 { copy.copyMemory(from: data) }
    buffer.append((copy, address))
    writeBufferSize += data.count + 8
    maybePauseProtocol()
  }

  private func sendReady() {
    while let (bytes, address) = buffer.first {
      if let failed = send(UnsafeRawBufferPointer(bytes), to: address) {
        if failed == EAGAIN || failed == EINTR { break }
        buffer.removeFirst()
        writeBufferSize -= bytes.count + 8
        bytes.deallocate()
        datagramProtocol?.errorReceived(OSError(errno: failed))
        return
      }
      buffer.removeFirst()
      writeBufferSize -= bytes.count + 8
      bytes.deallocate()
    }
    maybeResumeProtocol()
    if buffer.isEmpty {
      watch(writing: false)
      if isClosing { callConnectionLost(nil) }
    }
  }

  public func setWriteBufferLimits(high: Int? = nil, low: Int? = nil) throws {
    try flow.setLimits(high: high, low: low)
    maybePauseProtocol()
  }

  private func maybePauseProtocol() {
    guard let current = datagramProtocol, flow.pauses(at: writeBufferSize) else { return }
    current.pauseWriting()
  }

  private func maybeResumeProtocol() {
    guard let current = datagramProtocol, flow.resumes(at: writeBufferSize) else { return }
    current.resumeWriting()
  }

  /// asyncio's close: no more reading; connection_lost once the buffer is sent.
  public func close() {
    guard !isClosing else { return }
    isClosing = true
    watch(reading: false)
    if buffer.isEmpty {
      connectionLostCount += 1
      laterConnectionLost(nil)
    }
  }

  /// asyncio's abort: closes now, the buffer dropped.
  public func abort() { forceClose(nil) }

  /// asyncio's _force_close; `now` when the loop closes and nothing runs later.
  private func forceClose(_ error: (any Error)?, now: Bool = false) {
    guard connectionLostCount == 0 || now else { return }
    for item in buffer { item.bytes.deallocate() }
    buffer = []
    writeBufferSize = 0
    isClosing = true
    connectionLostCount += 1
    watch(reading: false, writing: false)
    if now { callConnectionLost(error) } else { laterConnectionLost(error) }
  }

  private func laterConnectionLost(_ error: (any Error)?) {
    do {
      try loop.callSoon { [self] in callConnectionLost(error) }
    } catch {
      callConnectionLost(nil)
    }
  }

  /// asyncio's _call_connection_lost: the protocol is told, the socket closed.
  private func callConnectionLost(_ error: (any Error)?) {
    guard fileDescriptor >= 0 else { return }
    loop.ioClosed(self)
    let fd = fileDescriptor
    fileDescriptor = -1
    // The descriptor goes after libuv let go of the poll handle.
    closePoll(poll, thenClosing: fd)
    let lost = datagramProtocol
    datagramProtocol = nil
    if made { lost?.connectionLost(error) }
    // Last: this may free the transport.
    let keep = keepAlive
    keepAlive = nil
    keep?.release()
  }

  /// get_extra_info('sockname').
  public var socketName: SocketAddress? {
    fileDescriptor >= 0 ? socketAddress(of: fileDescriptor, getsockname) : nil
  }
  /// get_extra_info('peername').
  public var peerName: SocketAddress? { peer }

  public var description: String {
    "<DatagramTransport fd=\(fileDescriptor >= 0 ? String(fileDescriptor) : "closed")\(isClosing ? " closing" : "")>"
  }
}

private func datagramReady(_ poll: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
  guard let data = poll?.pointee.data else { return }
  Unmanaged<DatagramTransport>.fromOpaque(data).takeUnretainedValue().ready(status: status, events: events)
}

// MARK: create_datagram_endpoint

/// A datagram endpoint being made: the addresses resolved, then one socket
/// per (family, protocol) pair tried until one binds and connects.
package final class DatagramEndpoint: CancellableRequest {
  let loop: Loop
  private let options: DatagramOptions
  private var done: ((Result<DatagramTransport, any Error>) -> Void)?
  private let makeProtocol: () -> any DatagramProtocol
  private var lookups: [ResolverRequest] = []
  private var resolved: [[AddressInfo]?] = [nil, nil]
  private let wanted: [Bool]

  private init(loop: Loop, options: DatagramOptions, wanted: [Bool], makeProtocol: @escaping () -> any DatagramProtocol,
               done: @escaping (Result<DatagramTransport, any Error>) -> Void) {
    self.loop = loop
    self.options = options
    self.wanted = wanted
    self.makeProtocol = makeProtocol
    self.done = done
    // A loop that closes first stops it: what it scheduled is dropped, and
    // its future must not keep waiting (and keep the loop alive).
    loop.ioOpened(self) { [self] _ in cancel() }
  }

  /// asyncio's create_datagram_endpoint over IP: `local` and `remote` are
  /// (host, port) pairs, resolved for SOCK_DGRAM.
  package static func inet(loop: Loop, local: (String?, Int)?, remote: (String?, Int)?, options: DatagramOptions,
                           makeProtocol: @escaping () -> any DatagramProtocol,
                           done: @escaping (Result<DatagramTransport, any Error>) -> Void) throws -> DatagramEndpoint {
    try loop.checkUsable()
    for pair in [local, remote] {
      if let pair, pair.1 < 0 || pair.1 > 65535 { throw RuntimeError(code: AIOS_EINVAL.rawValue, "port out of range") }
    }
    if local == nil && remote == nil && options.family == 0 {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "unexpected address family")
    }
    let endpoint = DatagramEndpoint(loop: loop, options: options, wanted: [local != nil, remote != nil],
                                    makeProtocol: makeProtocol, done: done)
    if local == nil && remote == nil {
      // No address: one unbound socket of the family.
      try loop.callSoon { [endpoint] in endpoint.tryPairs([(options.family, options.protocolNumber, nil, nil)]) }
      return endpoint
    }
    for (index, pair) in [local, remote].enumerated() {
      guard let pair else { continue }
      if let numeric = try? SocketAddress(ip: pair.0 ?? (options.family == AF_INET6 ? "::" : "0.0.0.0"), port: pair.1),
         options.family == 0 || numeric.family == options.family, options.flags & AI_CANONNAME == 0 {
        endpoint.resolved[index] = [AddressInfo(family: numeric.family, socketType: Int32(SOCK_DGRAM.rawValue),
                                                protocolNumber: Int32(IPPROTO_UDP), canonicalName: nil, address: numeric)]
        continue
      }
      let lookup = try ResolverRequest.addresses(
        loop: loop, host: pair.0, service: String(pair.1), family: options.family,
        socketType: Int32(SOCK_DGRAM.rawValue), protocolNumber: options.protocolNumber, flags: options.flags
      ) { [weak endpoint] result in endpoint?.didResolve(index, result) }
      endpoint.lookups.append(lookup)
    }
    if endpoint.lookups.isEmpty {
      try loop.callSoon { [endpoint] in endpoint.pairUp() }
    }
    return endpoint
  }

  /// asyncio's create_datagram_endpoint with family AF_UNIX: a stale socket
  /// file at `local` is removed first.
  package static func unix(loop: Loop, local: String?, remote: String?,
                           makeProtocol: @escaping () -> any DatagramProtocol,
                           done: @escaping (Result<DatagramTransport, any Error>) -> Void) throws -> DatagramEndpoint {
    try loop.checkUsable()
    let localAddress = try local.map { try SocketAddress(unixPath: $0) }
    let remoteAddress = try remote.map { try SocketAddress(unixPath: $0) }
    if let local, !local.isEmpty, local.first != "\0" {
      var info = stat()
      if stat(local, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK { unlink(local) }
    }
    let endpoint = DatagramEndpoint(loop: loop, options: DatagramOptions(), wanted: [local != nil, remote != nil],
                                    makeProtocol: makeProtocol, done: done)
    try loop.callSoon { [endpoint] in endpoint.tryPairs([(AF_UNIX, 0, localAddress, remoteAddress)]) }
    return endpoint
  }

  /// asyncio's create_datagram_endpoint(sock=...): a datagram socket the
  /// transport owns once this returns.
  package static func socket(loop: Loop, fd: Int32, makeProtocol: @escaping () -> any DatagramProtocol,
                             done: @escaping (Result<DatagramTransport, any Error>) -> Void) throws -> DatagramEndpoint {
    try loop.checkUsable()
    var type: Int32 = 0
    var size = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 else { throw OSError(errno: errno) }
    guard type == Int32(SOCK_DGRAM.rawValue) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "A datagram socket was expected")
    }
    try setNonBlocking(fd)
    let transport = try DatagramTransport(loop: loop, fd: fd, peer: socketAddress(of: fd, getpeername))
    let endpoint = DatagramEndpoint(loop: loop, options: DatagramOptions(), wanted: [false, false],
                                    makeProtocol: makeProtocol, done: done)
    do {
      try loop.callSoon { [endpoint] in endpoint.succeed(transport) }
    } catch {
      transport.abort()
      throw error
    }
    return endpoint
  }

  private func didResolve(_ index: Int, _ result: Result<[AddressInfo], any Error>) {
    guard done != nil else { return }
    switch result {
    case .failure(let error): fail(error)
    case .success(let infos):
      guard !infos.isEmpty else { return fail(OSError(errno: EINVAL, "getaddrinfo() returned empty list")) }
      resolved[index] = infos
      if !zip(wanted, resolved).contains(where: { $0.0 && $0.1 == nil }) { pairUp() }
    }
  }

  /// asyncio groups the addresses by (family, protocol): each pair must have
  /// an address for every side asked for.
  private func pairUp() {
    var order: [[Int32]] = []
    var pairs: [[Int32]: (SocketAddress?, SocketAddress?)] = [:]
    for (index, infos) in resolved.enumerated() {
      for info in infos ?? [] {
        let key = [info.family, info.protocolNumber]
        if pairs[key] == nil {
          order.append(key)
          pairs[key] = (nil, nil)
        }
        if index == 0 { if pairs[key]!.0 == nil { pairs[key]!.0 = info.address } }
        else if pairs[key]!.1 == nil { pairs[key]!.1 = info.address }
      }
    }
    let usable = order.compactMap { key -> (Int32, Int32, SocketAddress?, SocketAddress?)? in
      let (local, remote) = pairs[key]!
      if (wanted[0] && local == nil) || (wanted[1] && remote == nil) { return nil }
      return (key[0], key[1], local, remote)
    }
    guard !usable.isEmpty else {
      return fail(RuntimeError(code: AIOS_EINVAL.rawValue, "can not get address information"))
    }
    tryPairs(usable)
  }

  private func tryPairs(_ pairs: [(Int32, Int32, SocketAddress?, SocketAddress?)]) {
    guard done != nil else { return }
    var errors: [any Error] = []
    for (family, protocolNumber, local, remote) in pairs {
      let fd = Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            protocolNumber)
      guard fd >= 0 else {
        errors.append(OSError(errno: errno))
        continue
      }
      do {
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        if options.reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size) != 0 { throw OSError(errno: errno) }
        if options.allowBroadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, size) != 0 {
          throw OSError(errno: errno)
        }
        if let local, local.withSockaddr({ Glibc.bind(fd, $0, local.length) }) != 0 {
          let code = errno
          throw OSError(errno: code, "error while attempting to bind on address \(local): \(errorMessage(-code))")
        }
        // asyncio leaves a broadcast endpoint unconnected: sendto gives the address.
        if let remote, !options.allowBroadcast, remote.withSockaddr({ Glibc.connect(fd, $0, remote.length) }) != 0 {
          throw OSError(errno: errno)
        }
        let transport = try DatagramTransport(loop: loop, fd: fd, peer: options.allowBroadcast ? nil : remote)
        return succeed(transport)
      } catch {
        Glibc.close(fd)
        errors.append(error)
      }
    }
    fail(errors.first ?? OSError(errno: EINVAL))
  }

  private func succeed(_ transport: DatagramTransport) {
    guard let done else { return transport.abort() }
    self.done = nil
    loop.ioClosed(self)
    transport.start(makeProtocol())
    done(.success(transport))
  }

  private func fail(_ error: any Error) {
    guard let done else { return }
    self.done = nil
    loop.ioClosed(self)
    for lookup in lookups { lookup.cancel() }
    lookups = []
    done(.failure(error))
  }

  package func cancel() {
    guard done != nil else { return }
    done = nil
    loop.ioClosed(self)
    for lookup in lookups { lookup.cancel() }
    lookups = []
  }
}

private func setNonBlocking(_ fd: Int32) throws {
  let flags = fcntl(fd, F_GETFL)
  guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw OSError(errno: errno) }
}

extension Loop {
  /// asyncio's create_datagram_endpoint over UDP.
  public func createDatagramEndpoint(_ makeProtocol: @escaping () -> any DatagramProtocol,
                                     localAddress: (host: String?, port: Int)? = nil,
                                     remoteAddress: (host: String?, port: Int)? = nil,
                                     options: DatagramOptions = DatagramOptions()) async throws -> DatagramTransport {
    let local = localAddress.map { ($0.host, $0.port) }
    let remote = remoteAddress.map { ($0.host, $0.port) }
    return try await datagramEndpoint {
      try DatagramEndpoint.inet(loop: self, local: local, remote: remote, options: options, makeProtocol: makeProtocol,
                                done: $0)
    }
  }

  /// asyncio's create_datagram_endpoint with family AF_UNIX.
  public func createUnixDatagramEndpoint(_ makeProtocol: @escaping () -> any DatagramProtocol,
                                         localPath: String? = nil, remotePath: String? = nil) async throws
    -> DatagramTransport {
    try await datagramEndpoint {
      try DatagramEndpoint.unix(loop: self, local: localPath, remote: remotePath, makeProtocol: makeProtocol, done: $0)
    }
  }

  private func datagramEndpoint(
    _ start: (@escaping (Result<DatagramTransport, any Error>) -> Void) throws -> DatagramEndpoint
  ) async throws -> DatagramTransport {
    try await awaitRequest(start, discard: { $0.abort() })
  }
}
