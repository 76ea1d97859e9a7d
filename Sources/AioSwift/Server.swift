// asyncio's create_connection, create_unix_connection,
// connect_accepted_socket, create_server, create_unix_server and Server
// (base_events.py, unix_events.py) on libuv's TCP and pipe handles.
internal import CAioSwift
internal import CLibUV
import Glibc

/// What a request in flight (a lookup, a connection attempt) can be told:
/// nobody waits for it any more.
package protocol CancellableRequest: AnyObject {
  func cancel()
}
extension ResolverRequest: CancellableRequest {}

extension Loop {
  /// Runs `start`, whose completion finishes `future` unless it was
  /// cancelled first; cancelling `future` cancels the request.
  /// A value delivered after `future` was cancelled goes to `discard`
  /// (a connection nobody will use is closed).
  package func bind<T>(_ future: AnyFuture,
                       _ start: (@escaping (Result<T, any Error>) -> Void) throws -> any CancellableRequest,
                       deliver: @escaping (T) -> Void, discard: ((T) -> Void)? = nil) throws {
    let request = try start { result in
      guard !future.isDone else {
        if case .success(let value) = result { discard?(value) }
        return
      }
      switch result {
      case .success(let value): deliver(value)
      case .failure(let error): try? future.setError(error)
      }
    }
    future.addDoneCallback { done in if done.isCancelled { request.cancel() } }
  }

  /// A Swift future bound to a request, awaited.
  func awaitRequest<T>(_ start: (@escaping (Result<T, any Error>) -> Void) throws -> any CancellableRequest,
                       discard: ((T) -> Void)? = nil) async throws -> T {
    let future = createFuture(of: T.self)
    try bind(future, start, deliver: { try? future.setResult($0) }, discard: discard)
    return try await future.value
  }
}

/// Closes a libuv handle that is not a transport's and frees its memory.
func closeAndFree(_ handle: UnsafeMutableRawPointer) {
  let uvHandle = handle.assumingMemoryBound(to: uv_handle_t.self)
  if uv_is_closing(uvHandle) != 0 { return }
  uv_close(uvHandle) { $0.map { UnsafeMutableRawPointer($0).deallocate() } }
}

// MARK: Sockets

/// A new non-blocking socket, or the errno error.
private func makeSocket(family: Int32, type: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> Int32 {
  let fd = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
  if fd < 0 { throw OSError(errno: errno) }
  return fd
}

private func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32 = 1) throws {
  var value = value
  if setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 { throw OSError(errno: errno) }
}

private func socketOption(_ fd: Int32, _ name: Int32) -> Int32? {
  var value: Int32 = 0
  var length = socklen_t(MemoryLayout<Int32>.size)
  return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
}

private func bindSocket(_ fd: Int32, _ address: SocketAddress) throws {
  let rc = address.withSockaddr { Glibc.bind(fd, $0, address.length) }
  if rc != 0 {
    let code = errno
    throw OSError(errno: code, "error while attempting to bind on address \(address): \(errorMessage(-code))")
  }
}

/// libuv aborts on a descriptor epoll refuses (a regular file, /dev/null):
/// refused here first, with asyncio's PermissionError.
func checkPollable(_ fd: Int32) throws {
  let rc = aiosi_check_pollable(fd)
  if rc != 0 { throw OSError(errno: -rc) }
}

/// A libuv stream handle (TCP or pipe) wrapping `fd`, which it then owns.
private func openHandle(loop: Loop, fd: Int32, isUnix: Bool) throws -> UnsafeMutableRawPointer {
  let handle = StreamTransport.allocateHandle()
  var rc: Int32
  if isUnix {
    rc = uv_pipe_init(loop.uv, handle.assumingMemoryBound(to: uv_pipe_t.self), 0)
    if rc == 0 { rc = uv_pipe_open(handle.assumingMemoryBound(to: uv_pipe_t.self), fd) }
  } else {
    rc = uv_tcp_init(loop.uv, handle.assumingMemoryBound(to: uv_tcp_t.self))
    if rc == 0 { rc = uv_tcp_open(handle.assumingMemoryBound(to: uv_tcp_t.self), fd) }
  }
  if rc != 0 {
    // A handle that was initialized is closed (libuv knows it); its fd is
    // the caller's again only if it was never opened.
    if uv_is_closing(handle.assumingMemoryBound(to: uv_handle_t.self)) == 0,
       handle.assumingMemoryBound(to: uv_handle_t.self).pointee.loop == loop.uv {
      closeAndFree(handle)
    } else {
      handle.deallocate()
    }
    throw uvError(rc)
  }
  return handle
}

// MARK: Connecting

/// Options of create_connection beyond the host and port.
public struct ConnectOptions: Sendable {
  public var family: Int32 = 0
  public var flags: Int32 = 0
  public var localHost: String?
  public var localPort = 0
  /// RFC 8305's delay between attempts; nil: one after another.
  public var happyEyeballsDelay: Double?
  /// Addresses of the first family before the next (nil: asyncio's default).
  public var interleave: Int?
  public init() {}
}

/// asyncio's _interleave_addrinfos: families alternate, `firstCount` of the
/// first family first.
func interleave(_ infos: [AddressInfo], firstCount: Int) -> [AddressInfo] {
  var families: [Int32] = []
  var byFamily: [Int32: [AddressInfo]] = [:]
  for info in infos {
    if byFamily[info.family] == nil { families.append(info.family) }
    byFamily[info.family, default: []].append(info)
  }
  var lists = families.map { byFamily[$0]! }
  var result: [AddressInfo] = []
  if firstCount > 1, !lists.isEmpty {
    result.append(contentsOf: lists[0].prefix(firstCount - 1))
    lists[0].removeFirst(min(firstCount - 1, lists[0].count))
  }
  var index = 0
  while lists.contains(where: { !$0.isEmpty }) {
    if !lists[index].isEmpty { result.append(lists[index].removeFirst()) }
    index = (index + 1) % lists.count
  }
  return result
}

/// One create_connection, create_unix_connection or connect_accepted_socket
/// in flight: resolve, then try the addresses (staggered with happy
/// eyeballs), keep every attempt's error, hand the first connection to its
/// protocol.
package final class Connector: CancellableRequest {
  private let loop: Loop
  private let makeProtocol: () -> any StreamProtocol
  private var done: ((Result<StreamTransport, any Error>) -> Void)?
  private var options = ConnectOptions()
  private var addresses: [SocketAddress] = []
  private var localAddresses: [SocketAddress] = []
  private var next = 0
  private var attempts: [Attempt] = []
  private var errors: [any Error] = []
  private var staggerTimer: TimerHandle?
  private var lookup: (any CancellableRequest)?

  fileprivate final class Attempt {
    let handle: UnsafeMutableRawPointer
    let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
    let address: SocketAddress
    /// Strong: libuv calls back every attempt, even a cancelled one, and
    /// the connector must still be there then.
    let connector: Connector
    var finished = false
    init(handle: UnsafeMutableRawPointer, address: SocketAddress, connector: Connector) {
      self.handle = handle
      self.address = address
      self.connector = connector
    }
    deinit { request.deallocate() }
  }

  private init(loop: Loop, makeProtocol: @escaping () -> any StreamProtocol,
               done: @escaping (Result<StreamTransport, any Error>) -> Void) {
    self.loop = loop
    self.makeProtocol = makeProtocol
    self.done = done
    // A loop that closes first stops the attempts (their handles would
    // keep its last uv_run waiting).
    loop.ioOpened(self) { [self] _ in cancel() }
  }

  /// asyncio's create_connection over TCP.
  package static func tcp(loop: Loop, host: String?, port: Int, options: ConnectOptions,
                          makeProtocol: @escaping () -> any StreamProtocol,
                          done: @escaping (Result<StreamTransport, any Error>) -> Void) throws -> Connector {
    try loop.checkUsable()
    guard (0...65535).contains(port), (0...65535).contains(options.localPort) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "port out of range")
    }
    if let delay = options.happyEyeballsDelay, !(delay >= 0) || delay.isInfinite {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "happy_eyeballs_delay must be a number >= 0")
    }
    guard (options.interleave ?? 0) >= 0 else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "interleave must be >= 0")
    }
    let connector = Connector(loop: loop, makeProtocol: makeProtocol, done: done)
    connector.options = options
    connector.resolve(host: host, port: port, local: false)
    return connector
  }

  /// asyncio's create_unix_connection.
  package static func unix(loop: Loop, path: String, makeProtocol: @escaping () -> any StreamProtocol,
                           done: @escaping (Result<StreamTransport, any Error>) -> Void) throws -> Connector {
    try loop.checkUsable()
    let address = try SocketAddress(unixPath: path)
    let connector = Connector(loop: loop, makeProtocol: makeProtocol, done: done)
    connector.addresses = [address]
    connector.startAttempt()
    return connector
  }

  /// asyncio's connect_accepted_socket: the transport owns `fd` once this
  /// returns.
  package static func accepted(loop: Loop, fd: Int32, makeProtocol: @escaping () -> any StreamProtocol,
                               done: @escaping (Result<StreamTransport, any Error>) -> Void) throws -> Connector {
    try loop.checkUsable()
    guard let type = socketOption(fd, SO_TYPE), let family = socketOption(fd, SO_DOMAIN) else {
      throw OSError(errno: errno)
    }
    guard type == Int32(SOCK_STREAM.rawValue), family == AF_INET || family == AF_INET6 || family == AF_UNIX else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "A Stream Socket was expected")
    }
    let handle = try openHandle(loop: loop, fd: fd, isUnix: family == AF_UNIX)
    return try wrapping(loop: loop, handle: handle, kind: family == AF_UNIX ? .unix : .tcp,
                        makeProtocol: makeProtocol, done: done)
  }

  /// asyncio's connect_read_pipe and connect_write_pipe: `fd` is a pipe, a
  /// FIFO, a socket or a character device (a regular file is refused, as
  /// asyncio refuses it), made non-blocking; the transport owns it once this
  /// returns.
  package static func pipe(loop: Loop, fd: Int32, writing: Bool, makeProtocol: @escaping () -> any StreamProtocol,
                           done: @escaping (Result<StreamTransport, any Error>) -> Void) throws -> Connector {
    try loop.checkUsable()
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw OSError(errno: errno) }
    let type = info.st_mode & S_IFMT
    guard type == S_IFIFO || type == S_IFSOCK || type == S_IFCHR else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, writing
        ? "Pipe transport is only for pipes, sockets and character devices"
        : "Pipe transport is for pipes/sockets only.")
    }
    try checkPollable(fd)
    let handle = try openHandle(loop: loop, fd: fd, isUnix: true)
    return try wrapping(loop: loop, handle: handle, kind: writing ? .writePipe : .readPipe,
                        makeProtocol: makeProtocol, done: done)
  }

  /// A transport for an open handle: connection_made runs soon, as in
  /// asyncio, and the outcome after it.
  private static func wrapping(loop: Loop, handle: UnsafeMutableRawPointer, kind: StreamTransport.Kind,
                               makeProtocol: @escaping () -> any StreamProtocol,
                               done: @escaping (Result<StreamTransport, any Error>) -> Void) throws -> Connector {
    // The transport owns the handle at once, so a loop that closes before
    // connection_made aborts it with the others.
    let transport = StreamTransport(loop: loop, handle: handle, kind: kind)
    let connector = Connector(loop: loop, makeProtocol: makeProtocol, done: done)
    do {
      try loop.callSoon { [connector] in connector.succeed(transport) }
    } catch {
      transport.abort()
      throw error
    }
    return connector
  }

  private func resolve(host: String?, port: Int, local: Bool) {
    let target = local ? options.localHost : host
    let targetPort = local ? options.localPort : port
    // A numeric address needs no lookup (asyncio's _ipaddr_info).
    if let target, options.flags & AI_CANONNAME == 0, let numeric = try? SocketAddress(ip: target, port: targetPort),
       options.family == 0 || numeric.family == options.family {
      resolved(.success([AddressInfo(family: numeric.family, socketType: Int32(SOCK_STREAM.rawValue),
                                     protocolNumber: Int32(IPPROTO_TCP), canonicalName: nil,
                                     address: numeric)]), host: host, port: port, local: local)
      return
    }
    do {
      lookup = try ResolverRequest.addresses(
        loop: loop, host: target, service: String(targetPort), family: options.family,
        socketType: Int32(SOCK_STREAM.rawValue), protocolNumber: 0, flags: options.flags
      ) { [self] in resolved($0, host: host, port: port, local: local) }
    } catch {
      fail(error)
    }
  }

  private func resolved(_ result: Result<[AddressInfo], any Error>, host: String?, port: Int, local: Bool) {
    lookup = nil
    guard done != nil else { return }
    switch result {
    case .failure(let error):
      fail(error)
    case .success(let infos):
      guard !infos.isEmpty else {
        fail(OSError(errno: EINVAL, "getaddrinfo() returned empty list"))
        return
      }
      if local {
        localAddresses = infos.map(\.address)
        startAttempt()
        return
      }
      var ordered = infos
      let count = options.interleave ?? (options.happyEyeballsDelay != nil ? 1 : 0)
      if count > 0 { ordered = interleave(infos, firstCount: count) }
      addresses = ordered.map(\.address)
      if options.localHost != nil {
        resolve(host: host, port: port, local: true)
      } else {
        startAttempt()
      }
    }
  }

  /// Starts the next attempt; with happy eyeballs, the one after it starts
  /// after the delay unless this one finishes first.
  private func startAttempt() {
    guard done != nil else { return }
    guard next < addresses.count else {
      if attempts.isEmpty { failWithAttemptErrors() }
      return
    }
    let address = addresses[next]
    next += 1
    do {
      try connect(to: address)
    } catch {
      errors.append(error)
      startAttempt()
      return
    }
    if let delay = options.happyEyeballsDelay, next < addresses.count {
      staggerTimer?.cancel()
      staggerTimer = try? loop.callLater(delay) { [weak self] in
        self?.staggerTimer = nil
        self?.startAttempt()
      }
    }
  }

  private func connect(to address: SocketAddress) throws {
    let isUnix = address.family == AF_UNIX
    let fd = try makeSocket(family: address.family)
    do {
      if !isUnix, !localAddresses.isEmpty {
        var bound = false
        var lastError: (any Error)?
        for local in localAddresses where local.family == address.family {
          do {
            try bindSocket(fd, local)
            bound = true
            break
          } catch {
            lastError = error
          }
        }
        if !bound {
          throw lastError ?? OSError(errno: EADDRNOTAVAIL, "no matching local address with family=\(address.family) found")
        }
      }
    } catch {
      Glibc.close(fd)
      throw error
    }
    let handle: UnsafeMutableRawPointer
    do {
      handle = try openHandle(loop: loop, fd: fd, isUnix: isUnix)
    } catch {
      Glibc.close(fd)
      throw error
    }
    let attempt = Attempt(handle: handle, address: address, connector: self)
    attempt.request.pointee.data = Unmanaged.passRetained(attempt).toOpaque()
    attempts.append(attempt)
    if isUnix {
      address.path.withCString {
        uv_pipe_connect(attempt.request, handle.assumingMemoryBound(to: uv_pipe_t.self), $0, connectorConnected)
      }
    } else {
      let rc = address.withSockaddr {
        uv_tcp_connect(attempt.request, handle.assumingMemoryBound(to: uv_tcp_t.self), $0, connectorConnected)
      }
      if rc != 0 {
        Unmanaged<Attempt>.fromOpaque(attempt.request.pointee.data).release()
        attempts.removeAll { $0 === attempt }
        closeAndFree(handle)
        throw connectError(rc, address)
      }
    }
  }

  private func connectError(_ status: Int32, _ address: SocketAddress) -> any Error {
    OSError(errno: -status, "Connect call failed \(address): \(errorMessage(status))")
  }

  fileprivate static func connected(_ attempt: Attempt, status: Int32) {
    let connector = attempt.connector
    connector.attempts.removeAll { $0 === attempt }
    attempt.finished = true
    guard status == 0, connector.done != nil else {
      closeAndFree(attempt.handle)
      if status != UV_ECANCELED.rawValue, connector.done != nil {
        connector.errors.append(connector.connectError(status, attempt.address))
        connector.staggerTimer?.cancel()
        connector.staggerTimer = nil
        connector.startAttempt()
      }
      return
    }
    let transport = StreamTransport(loop: connector.loop, handle: attempt.handle,
                                    isUnix: attempt.address.family == AF_UNIX)
    connector.succeed(transport)
  }

  private func succeed(_ transport: StreamTransport) {
    guard let done else {
      transport.abort()
      return
    }
    self.done = nil
    stopOthers()
    transport.start(makeProtocol())
    done(.success(transport))
  }

  private func failWithAttemptErrors() {
    guard let first = errors.first else {
      fail(OSError(errno: ECONNREFUSED))
      return
    }
    let model = String(describing: first)
    if errors.count == 1 || errors.allSatisfy({ String(describing: $0) == model }) {
      fail(first)
    } else {
      let text = errors.map { ($0 as? any AsyncioError)?.message ?? String(describing: $0) }.joined(separator: ", ")
      fail(OSError(errno: -statusCode(of: first), "Multiple exceptions: \(text)"))
    }
  }

  private func fail(_ error: any Error) {
    guard let done else { return }
    self.done = nil
    stopOthers()
    done(.failure(error))
  }

  private func stopOthers() {
    loop.ioClosed(self)
    staggerTimer?.cancel()
    staggerTimer = nil
    lookup?.cancel()
    lookup = nil
    for attempt in attempts { closeAndFree(attempt.handle) }  // their callbacks get ECANCELED
    attempts = []
  }

  package func cancel() {
    guard done != nil else { return }
    done = nil
    stopOthers()
  }
}

private func connectorConnected(_ request: UnsafeMutablePointer<uv_connect_t>?, _ status: Int32) {
  guard let data = request?.pointee.data else { return }
  let attempt = Unmanaged<AnyObject>.fromOpaque(data).takeRetainedValue()
  Connector.connected(unsafeDowncast(attempt, to: Connector.Attempt.self), status: status)
}

// MARK: Servers

/// Options of create_server beyond the host and port.
public struct ServerOptions: Sendable {
  public var family: Int32 = 0
  public var flags: Int32 = 0
  public var backlog: Int32 = 100
  public var reuseAddress = true
  public var reusePort = false
  public var startServing = true
  /// More hosts besides the first (asyncio's host sequence).
  public var moreHosts: [String] = []
  /// A listening socket to serve instead (asyncio's sock=).
  public var socket: Int32?
  /// A Unix server removes its socket file at close if it is still the one
  /// it bound (asyncio 3.13's cleanup_socket).
  public var cleanupSocket = true
  public init() {}
}

/// asyncio.Server: listening sockets and the connections they accepted.
public final class Server: CustomStringConvertible {
  public let loop: Loop
  private var listeners: [UnsafeMutableRawPointer] = []
  private let isUnix: Bool
  private let backlog: Int32
  private let makeProtocol: () throws -> (any StreamProtocol)?
  private var clients: [ObjectIdentifier: StreamTransport] = [:]
  public private(set) var isServing = false
  public private(set) var isClosed = false
  private var closedWaiters: [AnyFuture] = []
  private var foreverFuture: AnyFuture?
  /// A Unix server's socket file, removed at close if it is still ours.
  private var unixPath: (path: String, device: UInt, inode: UInt)?
  /// The addresses of its sockets, kept from when they were bound.
  public private(set) var sockets: [SocketAddress] = []
  /// The server's own reference while a listening handle is open.
  private var keepAlive: Unmanaged<Server>?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0
  /// Freed with the server (a C factory's argument).
  package var onDeinit: (() -> Void)?

  private init(loop: Loop, isUnix: Bool, backlog: Int32, makeProtocol: @escaping () throws -> (any StreamProtocol)?) {
    self.loop = loop
    self.isUnix = isUnix
    self.backlog = backlog
    self.makeProtocol = makeProtocol
    LiveObjects.servers.add(1, ordering: .relaxed)
  }

  deinit {
    for waiter in closedWaiters where !waiter.isDone { _ = waiter.cancel() }
    onDeinit?()
    LiveObjects.servers.subtract(1, ordering: .relaxed)
  }

  /// asyncio's create_server: binds every address now; listens at once or
  /// at start_serving. `done` runs once, on the loop's thread.
  package static func tcp(loop: Loop, hosts: [String?], port: Int, options: ServerOptions,
                          makeProtocol: @escaping () throws -> (any StreamProtocol)?,
                          done: @escaping (Result<Server, any Error>) -> Void) throws -> any CancellableRequest {
    try loop.checkUsable()
    guard (0...65535).contains(port) else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "port out of range") }
    guard options.backlog >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "backlog must be >= 0") }
    let server = Server(loop: loop, isUnix: false, backlog: options.backlog == 0 ? 100 : options.backlog,
                        makeProtocol: makeProtocol)
    if let fd = options.socket {
      try server.adopt(fd)
      return ServerStart(server: server, options: options, done: done).finishSoon()
    }
    let start = ServerStart(server: server, options: options, done: done)
    start.resolve(hosts: hosts.isEmpty ? [nil] : hosts, port: port)
    return start
  }

  /// asyncio's create_unix_server.
  package static func unix(loop: Loop, path: String?, options: ServerOptions,
                           makeProtocol: @escaping () throws -> (any StreamProtocol)?,
                           done: @escaping (Result<Server, any Error>) -> Void) throws -> any CancellableRequest {
    try loop.checkUsable()
    guard options.backlog >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "backlog must be >= 0") }
    let server = Server(loop: loop, isUnix: true, backlog: options.backlog == 0 ? 100 : options.backlog,
                        makeProtocol: makeProtocol)
    if let fd = options.socket {
      try server.adopt(fd)
      // asyncio removes the file of a socket it was given at close too.
      if options.cleanupSocket, let path = server.sockets.first?.path { server.rememberSocketFile(path) }
    } else {
      guard let path else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "path was not specified, and no sock specified") }
      let address = try SocketAddress(unixPath: path)
      // A socket file left there is removed, as asyncio does.
      var info = stat()
      if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
      let fd = try makeSocket(family: AF_UNIX)
      do {
        try bindSocket(fd, address)
      } catch let error as OSError {
        Glibc.close(fd)
        if error.errno == EADDRINUSE {
          throw OSError(errno: EADDRINUSE, "Address \(path) is already in use")
        }
        throw error
      }
      if options.cleanupSocket { server.rememberSocketFile(path) }
      do {
        try server.addListener(fd)
      } catch {
        Glibc.close(fd)
        throw error
      }
    }
    return ServerStart(server: server, options: options, done: done).finishSoon()
  }

  /// The socket file at `path` (none for an abstract name), removed at
  /// close only if it is still this file (asyncio compares the inode).
  private func rememberSocketFile(_ path: String) {
    var info = stat()
    if !path.isEmpty, stat(path, &info) == 0 { unixPath = (path, UInt(info.st_dev), UInt(info.st_ino)) }
  }

  /// Serves a listening socket the caller made (asyncio's sock=).
  private func adopt(_ fd: Int32) throws {
    guard socketOption(fd, SO_TYPE) == Int32(SOCK_STREAM.rawValue), let family = socketOption(fd, SO_DOMAIN) else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "A Stream Socket was expected")
    }
    guard (family == AF_UNIX) == isUnix else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "the socket's family does not match the server's")
    }
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    try addListener(fd)
  }

  /// A listening handle for a bound socket (the handle owns it once made).
  fileprivate func addListener(_ fd: Int32) throws {
    let handle = try openHandle(loop: loop, fd: fd, isUnix: isUnix)
    handle.assumingMemoryBound(to: uv_handle_t.self).pointee.data = Unmanaged.passUnretained(self).toOpaque()
    listeners.append(handle)
    if let address = socketAddress(of: fd, getsockname) { sockets.append(address) }
    if keepAlive == nil {
      keepAlive = Unmanaged.passRetained(self)
      loop.ioOpened(self) { ($0 as! Server).closeNow(clients: true) }
    }
  }

  /// asyncio's start_serving.
  public func startServing() throws {
    guard !isClosed else { throw InvalidStateError("server \(self) is closed") }
    guard !isServing else { return }
    for handle in listeners {
      let rc = uv_listen(handle.assumingMemoryBound(to: uv_stream_t.self), backlog, serverConnection)
      if rc != 0 { throw uvError(rc) }
    }
    isServing = true
  }

  fileprivate func accept(_ listener: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
    guard !isClosed else { return }
    if status < 0 {
      // libuv keeps serving after EMFILE (it sheds the connections it
      // cannot take); the error is reported, as asyncio logs it.
      loop.callExceptionHandler(ExceptionContext(message: "socket.accept() out of system resource",
                                                 error: uvError(status)))
      return
    }
    let client = StreamTransport.allocateHandle()
    var rc: Int32
    if isUnix {
      rc = uv_pipe_init(loop.uv, client.assumingMemoryBound(to: uv_pipe_t.self), 0)
    } else {
      rc = uv_tcp_init(loop.uv, client.assumingMemoryBound(to: uv_tcp_t.self))
    }
    if rc != 0 {
      client.deallocate()
      return
    }
    rc = uv_accept(listener, client.assumingMemoryBound(to: uv_stream_t.self))
    if rc != 0 {
      closeAndFree(client)
      return
    }
    let transport = StreamTransport(loop: loop, handle: client, isUnix: isUnix)
    clients[ObjectIdentifier(transport)] = transport
    transport.onLost = { [weak self] lost in self?.detach(lost) }
    // connection_made runs soon after the accept, as in asyncio.
    _ = try? loop.callSoon { [weak self, transport] in
      guard let self, !transport.isClosing else { return }
      do {
        // A factory that returns none refuses the connection.
        guard let streamProtocol = try self.makeProtocol() else {
          transport.abort()
          return
        }
        transport.start(streamProtocol)
      } catch {
        self.loop.callExceptionHandler(ExceptionContext(message: "Error making a protocol for a new connection",
                                                        error: error))
        transport.abort()
      }
    }
  }

  private func detach(_ transport: StreamTransport) {
    clients[ObjectIdentifier(transport)] = nil
    wakeClosedWaiters()
  }

  /// asyncio's Server.close: stops listening; connections stay.
  public func close() { closeNow(clients: false) }

  private func closeNow(clients abortClients: Bool) {
    if !isClosed {
      isClosed = true
      isServing = false
      for handle in listeners { closeAndFree(handle) }
      listeners = []
      sockets = []
      if let unixPath {
        var info = stat()
        if stat(unixPath.path, &info) == 0, UInt(info.st_dev) == unixPath.device, UInt(info.st_ino) == unixPath.inode {
          unlink(unixPath.path)
        }
        self.unixPath = nil
      }
      if let foreverFuture, !foreverFuture.isDone { foreverFuture.cancel() }
      foreverFuture = nil
      loop.ioClosed(self)
    }
    if abortClients { self.abortClients() }
    wakeClosedWaiters()
  }

  /// asyncio 3.13's close_clients and abort_clients.
  public func closeClients() { for transport in Array(clients.values) { transport.close() } }
  public func abortClients() { for transport in Array(clients.values) { transport.abort() } }

  public var clientCount: Int { clients.count }

  private func wakeClosedWaiters() {
    guard isClosed, clients.isEmpty else { return }
    let waiters = closedWaiters
    closedWaiters = []
    for waiter in waiters where !waiter.isDone { try? waiter.setCResult(nil, destructor: nil) }
    // Last: this may free the server.
    let keep = keepAlive
    keepAlive = nil
    keep?.release()
  }

  /// A future done once the server is closed and its last connection gone.
  package func closedFuture() throws -> AnyFuture {
    try loop.checkUsable()
    if isClosed && clients.isEmpty { return loop.doneFuture }
    let future = RawFuture(loop: loop)
    closedWaiters.append(future)
    return future
  }

  /// asyncio's wait_closed.
  public func waitClosed() async throws { try await closedFuture().wait() }

  /// asyncio's serve_forever as a future: done only when cancelled, which
  /// closes the server.
  package func serveForeverFuture() throws -> AnyFuture {
    guard foreverFuture == nil else {
      throw InvalidStateError("server \(self) is already being awaited on serve_forever()")
    }
    guard !isClosed else { throw InvalidStateError("server \(self) is closed") }
    try startServing()
    let future = RawFuture(loop: loop)
    foreverFuture = future
    future.addDoneCallback { [weak self] _ in
      guard let self else { return }
      self.foreverFuture = nil
      self.close()
    }
    return future
  }

  /// asyncio's serve_forever: serves until cancelled, then closes and waits.
  public func serveForever() async throws {
    let future = try serveForeverFuture()
    do {
      try await future.wait()
    } catch {
      close()
      try? await waitClosed()
      throw error
    }
  }

  public var description: String { "<Server sockets=\(sockets)>" }

  /// Binds every resolved address (asyncio's create_server loop).
  fileprivate func bindAll(_ infos: [AddressInfo], options: ServerOptions) throws {
    var seen: [SocketAddress] = []
    for info in infos where !seen.contains(info.address) {
      seen.append(info.address)
      let fd: Int32
      do {
        fd = try makeSocket(family: info.family)
      } catch let error as OSError where error.errno == EAFNOSUPPORT {
        continue  // asyncio skips families the system lacks
      }
      do {
        if options.reuseAddress { try setOption(fd, SOL_SOCKET, SO_REUSEADDR) }
        if options.reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT) }
        if info.family == AF_INET6 { try? setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY) }
        try bindSocket(fd, info.address)
        try addListener(fd)
      } catch {
        Glibc.close(fd)
        throw error
      }
    }
  }
}

/// The rest of create_server: resolve every host, bind, start serving,
/// deliver the server.
private final class ServerStart: CancellableRequest {
  let server: Server
  let options: ServerOptions
  var done: ((Result<Server, any Error>) -> Void)?
  var pending = 0
  var infos: [[AddressInfo]] = []
  var lookups: [ResolverRequest] = []

  init(server: Server, options: ServerOptions, done: @escaping (Result<Server, any Error>) -> Void) {
    self.server = server
    self.options = options
    self.done = done
    // A loop that closes first ends the start: nothing would run it.
    server.loop.ioOpened(self) { [self] _ in cancel() }
  }

  func resolve(hosts: [String?], port: Int) {
    infos = Array(repeating: [], count: hosts.count)
    pending = hosts.count
    for (index, host) in hosts.enumerated() {
      let host = host?.isEmpty == true ? nil : host
      do {
        lookups.append(try ResolverRequest.addresses(
          loop: server.loop, host: host, service: String(port), family: options.family,
          socketType: Int32(SOCK_STREAM.rawValue), protocolNumber: 0, flags: options.flags | AI_PASSIVE
        ) { [self] result in
          switch result {
          case .success(let list):
            infos[index] = list
            pending -= 1
            if pending == 0 { bindAndFinish() }
          case .failure(let error):
            finish(.failure(error))
          }
        })
      } catch {
        finish(.failure(error))
        return
      }
    }
  }

  private func bindAndFinish() {
    lookups = []
    do {
      try server.bindAll(infos.flatMap { $0 }, options: options)
      if options.startServing { try server.startServing() }
      finish(.success(server))
    } catch {
      finish(.failure(error))
    }
  }

  /// Delivers the server soon (a Unix server or a given socket binds at once).
  func finishSoon() -> ServerStart {
    _ = try? server.loop.callSoon { [self] in
      do {
        if options.startServing { try server.startServing() }
        finish(.success(server))
      } catch {
        finish(.failure(error))
      }
    }
    return self
  }

  private func finish(_ result: Result<Server, any Error>) {
    guard let done else { return }
    self.done = nil
    server.loop.ioClosed(self)
    for lookup in lookups { lookup.cancel() }
    lookups = []
    if case .failure = result { server.close() }
    done(result)
  }

  func cancel() {
    guard done != nil else { return }
    done = nil
    server.loop.ioClosed(self)
    for lookup in lookups { lookup.cancel() }
    lookups = []
    server.close()
  }
}

private func serverConnection(_ listener: UnsafeMutablePointer<uv_stream_t>?, _ status: Int32) {
  guard let listener, let data = listener.pointee.data else { return }
  Unmanaged<Server>.fromOpaque(data).takeUnretainedValue().accept(listener, status: status)
}

// MARK: Swift API

extension Loop {
  /// asyncio's create_connection: a connected transport with its protocol.
  public func createConnection(_ makeProtocol: @escaping () -> any StreamProtocol, host: String?, port: Int,
                               options: ConnectOptions = ConnectOptions()) async throws -> StreamTransport {
    try await awaitRequest({
      try Connector.tcp(loop: self, host: host, port: port, options: options, makeProtocol: makeProtocol, done: $0)
    }, discard: { $0.abort() })
  }

  /// asyncio's create_unix_connection.
  public func createUnixConnection(_ makeProtocol: @escaping () -> any StreamProtocol, path: String) async throws
    -> StreamTransport {
    try await awaitRequest({ try Connector.unix(loop: self, path: path, makeProtocol: makeProtocol, done: $0) },
                           discard: { $0.abort() })
  }

  /// asyncio's connect_accepted_socket: the transport owns `fd` from then on.
  public func connectAcceptedSocket(_ makeProtocol: @escaping () -> any StreamProtocol, fd: Int32) async throws
    -> StreamTransport {
    try await awaitRequest({ try Connector.accepted(loop: self, fd: fd, makeProtocol: makeProtocol, done: $0) },
                           discard: { $0.abort() })
  }

  /// asyncio's create_server.
  public func createServer(_ makeProtocol: @escaping () throws -> any StreamProtocol, host: String?, port: Int,
                           options: ServerOptions = ServerOptions()) async throws -> Server {
    try await awaitRequest({
      try Server.tcp(loop: self, hosts: (host.map { [$0] } ?? []) + options.moreHosts, port: port, options: options,
                     makeProtocol: makeProtocol, done: $0)
    }, discard: { $0.close() })
  }

  /// asyncio's create_unix_server.
  public func createUnixServer(_ makeProtocol: @escaping () throws -> any StreamProtocol, path: String?,
                               options: ServerOptions = ServerOptions()) async throws -> Server {
    try await awaitRequest({
      try Server.unix(loop: self, path: path, options: options, makeProtocol: makeProtocol, done: $0)
    }, discard: { $0.close() })
  }
}
