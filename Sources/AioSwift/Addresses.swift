// Socket addresses and name resolution (asyncio's getaddrinfo and
// getnameinfo) on libuv's resolver, which runs the system's on a worker
// thread so the loop never blocks.
internal import CAioSwift
internal import CLibUV
import Glibc

/// A socket address: IPv4, IPv6 (with its scope id and flow info) or a Unix
/// socket path, as the system's struct sockaddr holds it.
public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
  var storage = sockaddr_storage()
  var length: socklen_t = 0

  /// An address from its bytes (a struct sockaddr of `length` bytes).
  package init?(bytes: UnsafeRawPointer, length: Int) {
    guard length >= MemoryLayout<sa_family_t>.size, length <= MemoryLayout<sockaddr_storage>.size else {
      return nil
    }
    withUnsafeMutableBytes(of: &storage) { $0.baseAddress!.copyMemory(from: bytes, byteCount: length) }
    self.length = socklen_t(length)
    // An IP address must be whole.
    switch Int32(storage.ss_family) {
    case AF_INET: if length < MemoryLayout<sockaddr_in>.size { return nil }
    case AF_INET6: if length < MemoryLayout<sockaddr_in6>.size { return nil }
    default: break
    }
  }

  /// A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "fe80::1%eth0").
  public init(ip: String, port: Int) throws {
    guard (0...65535).contains(port) else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "port out of range") }
    var hints = addrinfo()
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(ip, String(port), &hints, &result)
    guard rc == 0, let first = result else {
      throw AddressInfoError(code: AIOS_EAI_NONAME.rawValue, "not a numeric address: \(ip)")
    }
    defer { freeaddrinfo(result) }
    self.init(bytes: first.pointee.ai_addr, length: Int(first.pointee.ai_addrlen))!
  }

  /// A Unix socket path (at most 107 bytes).
  public init(unixPath path: String) throws {
    var address = sockaddr_un()
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let bytes = Array(path.utf8)
    guard !bytes.isEmpty, bytes.count < capacity else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "path too long for a Unix socket: \(path)")
    }
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let length = MemoryLayout<sa_family_t>.size + bytes.count + 1
    self = withUnsafeBytes(of: &address) { SocketAddress(bytes: $0.baseAddress!, length: length)! }
  }

  public var family: Int32 { Int32(storage.ss_family) }

  /// The numeric host of an IP address ("" for a Unix socket).
  public var host: String {
    var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    let rc = withSockaddr { getnameinfo($0, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) }
    return rc == 0 ? String(cString: text) : ""
  }

  /// The port of an IP address (0 for a Unix socket).
  public var port: Int {
    withSockaddr { address -> Int in
      switch Int32(address.pointee.sa_family) {
      case AF_INET:
        return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
      case AF_INET6:
        return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
      default: return 0
      }
    }
  }

  /// An IPv6 address's scope id (0 otherwise).
  public var scopeId: UInt32 {
    guard family == AF_INET6 else { return 0 }
    return withSockaddr { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_scope_id } }
  }

  /// A Unix socket's path ("" for an unnamed socket or an IP address).
  public var path: String {
    guard family == AF_UNIX, Int(length) > MemoryLayout<sa_family_t>.size else { return "" }
    return withUnsafeBytes(of: storage) { raw in
      let bytes = raw[MemoryLayout<sa_family_t>.size..<Int(length)]
      return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
  }

  func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: storage) { try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
  }

  /// The struct sockaddr's bytes (`byteCount` of them).
  package func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[..<Int(length)])) }
  }

  public var description: String {
    switch family {
    case AF_INET: return "\(host):\(port)"
    case AF_INET6: return "[\(host)]:\(port)"
    case AF_UNIX: return path
    default: return "<family \(family)>"
    }
  }

  public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
    a.length == b.length && withUnsafeBytes(of: a.storage) { x in
      withUnsafeBytes(of: b.storage) { y in memcmp(x.baseAddress!, y.baseAddress!, Int(a.length)) == 0 }
    }
  }
}

/// One answer of getaddrinfo.
public struct AddressInfo: Sendable, Equatable {
  public var family: Int32
  public var socketType: Int32
  public var protocolNumber: Int32
  public var canonicalName: String?
  public var address: SocketAddress
}

/// A request to libuv that finishes once, with its outcome or cancelled.
/// Cancelling an outcome nobody waits for any more: a request already on a
/// worker thread runs to its end and its answer is dropped.
package final class ResolverRequest {
  private enum Kind {
    case addresses(UnsafeMutablePointer<uv_getaddrinfo_t>, (Result<[AddressInfo], any Error>) -> Void)
    case name(UnsafeMutablePointer<uv_getnameinfo_t>, (Result<(String, String), any Error>) -> Void)
  }
  private var kind: Kind?

  /// Starts getaddrinfo; `done` runs once on the loop's thread, unless cancelled.
  package static func addresses(loop: Loop, host: String?, service: String?, family: Int32,
                                socketType: Int32, protocolNumber: Int32, flags: Int32,
                                done: @escaping (Result<[AddressInfo], any Error>) -> Void) throws
    -> ResolverRequest {
    try loop.checkUsable()
    guard host != nil || service != nil else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "host and port cannot both be empty")
    }
    var hints = addrinfo()
    hints.ai_family = family
    hints.ai_socktype = socketType
    hints.ai_protocol = protocolNumber
    hints.ai_flags = flags
    let uvRequest = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
    return try begin(uvRequest, .addresses(uvRequest, done)) {
      uv_getaddrinfo(loop.uv, uvRequest, addressesDone, host, service, &hints)
    }
  }

  /// Starts getnameinfo; `done` runs once on the loop's thread, unless cancelled.
  package static func name(loop: Loop, address: SocketAddress, flags: Int32,
                           done: @escaping (Result<(String, String), any Error>) -> Void) throws
    -> ResolverRequest {
    try loop.checkUsable()
    guard address.family == AF_INET || address.family == AF_INET6 else {
      throw RuntimeError(code: AIOS_EINVAL.rawValue, "getnameinfo takes an IPv4 or IPv6 address")
    }
    let uvRequest = UnsafeMutablePointer<uv_getnameinfo_t>.allocate(capacity: 1)
    return try begin(uvRequest, .name(uvRequest, done)) {
      address.withSockaddr { uv_getnameinfo(loop.uv, uvRequest, nameDone, $0, flags) }
    }
  }

  /// Starts `uvRequest` with `call`; the request holds itself in it until
  /// its callback. On failure the memory is freed and nothing is held.
  private static func begin<R>(_ uvRequest: UnsafeMutablePointer<R>, _ kind: Kind, _ call: () -> Int32) throws
    -> ResolverRequest {
    let request = ResolverRequest()
    let header = UnsafeMutableRawPointer(uvRequest).assumingMemoryBound(to: uv_req_t.self)
    header.pointee.data = Unmanaged.passRetained(request).toOpaque()
    request.kind = kind
    let rc = call()
    if rc != 0 {
      Unmanaged<ResolverRequest>.fromOpaque(header.pointee.data).release()
      uvRequest.deallocate()
      request.kind = nil
      throw uvError(rc)
    }
    return request
  }

  /// Nobody wants the answer any more: `done` will not run.
  package func cancel() {
    switch kind {
    case .addresses(let uvRequest, _):
      kind = .addresses(uvRequest, { _ in })
      uv_cancel(UnsafeMutableRawPointer(uvRequest).assumingMemoryBound(to: uv_req_t.self))
    case .name(let uvRequest, _):
      kind = .name(uvRequest, { _ in })
      uv_cancel(UnsafeMutableRawPointer(uvRequest).assumingMemoryBound(to: uv_req_t.self))
    case nil: break
    }
  }

  fileprivate func finishAddresses(_ status: Int32, _ list: UnsafeMutablePointer<addrinfo>?) {
    guard case .addresses(let uvRequest, let done) = kind else { return }
    kind = nil
    uvRequest.deallocate()
    if status != 0 {
      done(.failure(uvError(status)))
      return
    }
    var answers: [AddressInfo] = []
    var entry = list
    while let current = entry {
      let info = current.pointee
      if let address = info.ai_addr, let socketAddress = SocketAddress(bytes: address, length: Int(info.ai_addrlen)) {
        answers.append(AddressInfo(family: info.ai_family, socketType: info.ai_socktype,
                                   protocolNumber: info.ai_protocol,
                                   canonicalName: info.ai_canonname.map { String(cString: $0) },
                                   address: socketAddress))
      }
      entry = info.ai_next
    }
    done(.success(answers))
  }

  fileprivate func finishName(_ status: Int32, _ host: UnsafePointer<CChar>?, _ service: UnsafePointer<CChar>?) {
    guard case .name(let uvRequest, let done) = kind else { return }
    kind = nil
    // The strings live in the request.
    defer { uvRequest.deallocate() }
    if status != 0 {
      done(.failure(uvError(status)))
    } else {
      done(.success((host.map { String(cString: $0) } ?? "", service.map { String(cString: $0) } ?? "")))
    }
  }
}

private func addressesDone(_ request: UnsafeMutablePointer<uv_getaddrinfo_t>?, _ status: Int32,
                           _ list: UnsafeMutablePointer<addrinfo>?) {
  defer { uv_freeaddrinfo(list) }
  guard let data = request?.pointee.data else { return }
  Unmanaged<ResolverRequest>.fromOpaque(data).takeRetainedValue().finishAddresses(status, list)
}

private func nameDone(_ request: UnsafeMutablePointer<uv_getnameinfo_t>?, _ status: Int32,
                      _ host: UnsafePointer<CChar>?, _ service: UnsafePointer<CChar>?) {
  guard let data = request?.pointee.data else { return }
  Unmanaged<ResolverRequest>.fromOpaque(data).takeRetainedValue().finishName(status, host, service)
}

extension Loop {
  /// asyncio's getaddrinfo: every address `host` and `port` resolve to.
  public func getAddrInfo(_ host: String?, _ port: String?, family: Int32 = 0, type: Int32 = 0,
                          proto: Int32 = 0, flags: Int32 = 0) async throws -> [AddressInfo] {
    try await awaitRequest {
      try ResolverRequest.addresses(loop: self, host: host, service: port, family: family, socketType: type,
                                    protocolNumber: proto, flags: flags, done: $0)
    }
  }

  /// asyncio's getnameinfo: the host and service of an address.
  public func getNameInfo(_ address: SocketAddress, flags: Int32 = 0) async throws -> (host: String, service: String) {
    try await awaitRequest { try ResolverRequest.name(loop: self, address: address, flags: flags, done: $0) }
  }
}
