import AioSwift
import Glibc
import XCTest

/// A Unix socket pair, both ends non-blocking.
private func socketPair() -> (Int32, Int32) {
  var fds: [Int32] = [-1, -1]
  precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
  // Pinned buffers: tests that fill them do not depend on the host's defaults.
  var size: Int32 = 65536
  for fd in fds {
    precondition(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size)) == 0)
  }
  return (fds[0], fds[1])
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Reads `fd` to EOF on the loop.
private func readAll(_ loop: Loop, _ fd: Int32) async throws -> [UInt8] {
  var all: [UInt8] = []
  while true {
    let piece = try await loop.sockRecv(fd, 256 * 1024)
    if piece.isEmpty { return all }
    all += piece
  }
}

/// A bound, listening TCP socket on `host` (non-blocking) and its address.
private func listener(_ host: String) throws -> (Int32, SocketAddress) {
  let address = try SocketAddress(ip: host, port: 0)
  let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
  let bound = address.withBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
  XCTAssertEqual(bound, 0)
  XCTAssertEqual(listen(fd, 8), 0)
  var storage = sockaddr_storage()
  var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
  _ = withUnsafeMutablePointer(to: &storage) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
  }
  return (fd, SocketAddress(bytes: &storage, length: Int(length))!)
}

/// A temp file of `size` patterned bytes, unlinked (it goes with its descriptor).
private func patternedFile(_ size: Int) -> (Int32, [UInt8]) {
  var path = Array("/tmp/aio-sendfile-XXXXXX".utf8CString)
  let fd = mkstemp(&path)
  unlink(path)
  let content = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761) >> 13) }
  _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
  return (fd, content)
}

private final class Sink: StreamProtocol {
  var transport: StreamTransport?
  func connectionMade(_ transport: StreamTransport) { self.transport = transport }
}

final class SocketTests: LeakCheckedTestCase {
  func testReadersAreServedInOrderAndCancelledOnesLoseNothing() throws {
    try runMain {
      let loop = try getRunningLoop()
      let (ours, peer) = socketPair()
      defer {
        close(ours)
        close(peer)
      }
      let first = try createTask { try await loop.sockRecv(ours, 1) }
      let cancelled = try createTask { try await loop.sockRecv(ours, 10) }
      let second = try createTask { try await loop.sockRecv(ours, 2) }
      let third = try createTask { try await loop.sockRecv(ours, 100) }
      try await yieldIterations(2)
      cancelled.cancel()
      try await yieldIterations(1)
      try Array("abcdef".utf8).withUnsafeBytes { try send(peer, $0) }
      let (a, b, c) = (try await first.value, try await second.value, try await third.value)
      XCTAssertEqual(text(a), "a")
      XCTAssertEqual(text(b), "bc")
      XCTAssertEqual(text(c), "def")
      XCTAssertTrue(cancelled.isCancelled)
      // recv_into, then EOF.
      try Array("xyz".utf8).withUnsafeBytes { try send(peer, $0) }
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
      defer { buffer.deallocate() }
      let count = try await loop.sockRecv(ours, into: buffer)
      XCTAssertEqual(text(Array(buffer[..<count])), "xyz")
      shutdown(peer, Int32(SHUT_WR))
      let atEOF = try await loop.sockRecv(ours, 10)
      XCTAssertEqual(atEOF, [])
    }
  }

  func testDatagramsIPv4AndIPv6() throws {
    try runMain {
      let loop = try getRunningLoop()
      for host in ["127.0.0.1", "::1"] {
        let local = try SocketAddress(ip: host, port: 0)
        let server = socket(local.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        let client = socket(local.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        defer {
          close(server)
          close(client)
        }
        let bound = local.withBytes { bind(server, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        if bound != 0 && host == "::1" {
          print("testDatagramsIPv4AndIPv6: no IPv6 on this machine, skipped ::1")
          continue
        }
        XCTAssertEqual(bound, 0)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) }
        }
        let serverAddress = SocketAddress(bytes: &storage, length: Int(length))!
        let receiving = try createTask { try await loop.sockRecvFrom(server, 100) }
        try await yieldIterations(1)
        let sent = try await loop.sockSendTo(client, Array("ping".utf8), to: serverAddress)
        XCTAssertEqual(sent, 4)
        let (data, from) = try await receiving.value
        XCTAssertEqual(text(data), "ping")
        XCTAssertEqual(from?.family, local.family)
        XCTAssertEqual(from?.host, host)
        // Into a buffer smaller than the datagram: the rest is dropped.
        _ = try await loop.sockSendTo(client, Array("datagram".utf8), to: serverAddress)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 1)
        defer { buffer.deallocate() }
        let (count, sender) = try await loop.sockRecvFrom(server, into: buffer)
        XCTAssertEqual(count, 4)
        XCTAssertEqual(text(Array(buffer)), "data")
        XCTAssertEqual(sender?.port, from?.port)
      }
    }
  }

  func testConnectAcceptAndRefused() throws {
    try runMain {
      let loop = try getRunningLoop()
      let (server, address) = try listener("127.0.0.1")
      defer { close(server) }
      let accepting = try createTask { try await loop.sockAccept(server) }
      try await yieldIterations(1)
      let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
      defer { close(client) }
      try await loop.sockConnect(client, to: address)
      let (accepted, peer) = try await accepting.value
      defer { close(accepted) }
      XCTAssertNotEqual(fcntl(accepted, F_GETFL) & O_NONBLOCK, 0)
      XCTAssertEqual(peer?.host, "127.0.0.1")
      try await loop.sockSendAll(client, Array("hello".utf8))
      let hello = try await loop.sockRecv(accepted, 10)
      XCTAssertEqual(text(hello), "hello")
      // A port nobody listens on.
      let (refusing, refusingAddress) = try listener("127.0.0.1")
      close(refusing)
      let other = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
      defer { close(other) }
      do {
        try await loop.sockConnect(other, to: refusingAddress)
        XCTFail("connected to a closed port")
      } catch let error as OSError {
        XCTAssertEqual(error.errno, ECONNREFUSED)
      }
    }
  }

  func testCancelledSendAllSaysHowMuchWasSent() throws {
    try runMain {
      let loop = try getRunningLoop()
      let (ours, peer) = socketPair()
      defer { close(peer) }
      let data = [UInt8]((0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) })
      // The task's own CancelledError is asyncio's: the count is on the one
      // the send throws.
      let sending = try createTask { () async throws -> Int in
        do {
          try await loop.sockSendAll(ours, data)
          return -2
        } catch let error as CancelledError {
          return error.bytesSent ?? -1
        }
      }
      try await yieldIterations(2)
      sending.cancel(message: "enough")
      let sent = try await sending.value
      XCTAssertGreaterThan(sent, 0)
      XCTAssertLessThan(sent, data.count)
      guard sent > 0 else { return }
      shutdown(ours, Int32(SHUT_WR))
      let received = try await readAll(loop, peer)
      XCTAssertEqual(received.count, sent)
      XCTAssertTrue(received == Array(data[..<sent]))
      close(ours)
    }
  }

  func testSockSendfileBothWays() throws {
    try runMain {
      let loop = try getRunningLoop()
      let (file, content) = patternedFile(4 << 20)
      defer { close(file) }
      for fallback in [SendfileFallback.refused, .always] {
        let (ours, peer) = socketPair()
        defer { close(peer) }
        let reading = try createTask { try await readAll(loop, peer) }
        let sent = try await loop.sockSendfile(ours, file: file, offset: 1000, fallback: fallback)
        XCTAssertEqual(sent, content.count - 1000)
        XCTAssertEqual(lseek(file, 0, SEEK_CUR), off_t(content.count))
        close(ours)
        let received = try await reading.value
        XCTAssertTrue(received == Array(content[1000...]), "\(fallback)")
      }
      // Arguments asyncio refuses.
      let (ours, peer) = socketPair()
      defer {
        close(ours)
        close(peer)
      }
      for (offset, count) in [(-1, nil), (0, 0)] as [(Int, Int?)] {
        do {
          _ = try await loop.sockSendfile(ours, file: file, offset: offset, count: count)
          XCTFail("sent with offset \(offset), count \(String(describing: count))")
        } catch let error as RuntimeError {
          XCTAssertEqual(error.kind, .runtime)
        }
      }
    }
  }

  func testTransportSendfile() throws {
    try runMain {
      let loop = try getRunningLoop()
      let (file, content) = patternedFile(2 << 20)
      defer { close(file) }
      let (ours, peer) = socketPair()
      defer { close(peer) }
      let transport = try await loop.connectAcceptedSocket({ Sink() }, fd: ours)
      try Array("head".utf8).withUnsafeBytes { try transport.write($0) }
      // More than the socket holds: under way until the peer reads.
      let sending = try createTask(eager: true) { try await loop.sendfile(transport, file: file, offset: 10) }
      XCTAssertThrowsError(try Array("x".utf8).withUnsafeBytes { try transport.write($0) })
      let reading = try createTask { try await readAll(loop, peer) }
      let sent = try await sending.value
      XCTAssertEqual(sent, content.count - 10)
      try Array("tail".utf8).withUnsafeBytes { try transport.write($0) }
      transport.close()
      let received = try await reading.value
      XCTAssertTrue(received == Array("head".utf8) + Array(content[10...]) + Array("tail".utf8))
    }
  }

  func testBadSocketsAndClosedUnderAnOperation() throws {
    try runMain {
      let loop = try getRunningLoop()
      var blocking: [Int32] = [-1, -1]
      XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &blocking), 0)
      defer {
        close(blocking[0])
        close(blocking[1])
      }
      do {
        _ = try await loop.sockRecv(blocking[0], 1)
        XCTFail("read a blocking socket")
      } catch let error as RuntimeError {
        XCTAssertTrue(error.message.contains("non-blocking"))
      }
      do {
        _ = try await loop.sockRecv(-1, 1)
        XCTFail("read -1")
      } catch let error as OSError {
        XCTAssertEqual(error.errno, EBADF)
      }
      // Closed while a read waits: it fails, and the loop goes on.
      let (ours, peer) = socketPair()
      let waiting = try createTask { try await loop.sockRecv(ours, 1) }
      try await yieldIterations(1)
      close(ours)
      close(peer)
      do {
        _ = try await waiting.value
        XCTFail("read a closed socket")
      } catch let error as OSError {
        XCTAssertEqual(error.errno, EBADF)
      }
    }
  }
}

/// send(2) of all of `data` at once (the socket buffer holds it).
private func send(_ fd: Int32, _ data: UnsafeRawBufferPointer) throws {
  XCTAssertEqual(Glibc.send(fd, data.baseAddress, data.count, 0), data.count)
}
