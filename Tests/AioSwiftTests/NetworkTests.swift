import AioSwift
import Glibc
import XCTest

/// An echo protocol for the transport tests: writes back what it reads.
private final class EchoProtocol: StreamProtocol {
  var transport: StreamTransport?
  func connectionMade(_ transport: StreamTransport) { self.transport = transport }
  func dataReceived(_ data: UnsafeRawBufferPointer) { try? transport?.write(data) }
}

/// A client protocol that records what happens to it.
private final class RecordingProtocol: StreamProtocol {
  var received: [UInt8] = []
  var events: [String] = []
  let lost: Future<Void>
  init(loop: Loop) { lost = loop.createFuture() }
  func connectionMade(_ transport: StreamTransport) { events.append("made") }
  func dataReceived(_ data: UnsafeRawBufferPointer) { received.append(contentsOf: data) }
  func eofReceived() -> Bool {
    events.append("eof")
    return false
  }
  func connectionLost(_ error: (any Error)?) {
    events.append(error == nil ? "lost" : "lost \(error!)")
    try? lost.setResult(())
  }
  func pauseWriting() { events.append("pause") }
  func resumeWriting() { events.append("resume") }
}

/// A buffered protocol: bytes land in its own memory.
private final class BufferedRecorder: BufferedStreamProtocol {
  let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 7, alignment: 1)
  var received: [UInt8] = []
  let lost: Future<Void>
  init(loop: Loop) { lost = loop.createFuture() }
  deinit { memory.deallocate() }
  func getBuffer(sizeHint: Int) throws -> UnsafeMutableRawBufferPointer { memory }
  func bufferUpdated(_ count: Int) { received.append(contentsOf: memory[..<count]) }
  func connectionLost(_ error: (any Error)?) { try? lost.setResult(()) }
}

final class NetworkTests: LeakCheckedTestCase {
  func testGetAddrInfoAndNameInfo() throws {
    try runMain {
      let loop = try getRunningLoop()
      let infos = try await loop.getAddrInfo("127.0.0.1", "80", type: Int32(SOCK_STREAM.rawValue))
      XCTAssertEqual(infos.count, 1)
      XCTAssertEqual(infos[0].address.host, "127.0.0.1")
      XCTAssertEqual(infos[0].address.port, 80)
      let (host, service) = try await loop.getNameInfo(infos[0].address, flags: NI_NUMERICHOST | NI_NUMERICSERV)
      XCTAssertEqual(host, "127.0.0.1")
      XCTAssertEqual(service, "80")
      do {
        _ = try await loop.getAddrInfo("no-such-host.invalid", "80", flags: AI_NUMERICHOST)
        XCTFail("expected gaierror")
      } catch let error as AddressInfoError {
        XCTAssertEqual(error.kind, .gai)
      }
    }
  }

  func testTransportEcho() throws {
    try runMain {
      let loop = try getRunningLoop()
      let server = try await loop.createServer({ EchoProtocol() }, host: "127.0.0.1", port: 0)
      let port = server.sockets[0].port
      let client = RecordingProtocol(loop: loop)
      let transport = try await loop.createConnection({ client }, host: "127.0.0.1", port: port)
      XCTAssertEqual(transport.peerName?.port, port)
      try Array("ping".utf8).withUnsafeBytes { try transport.write($0) }
      while client.received.count < 4 { try await sleep(0.001) }
      XCTAssertEqual(client.received, Array("ping".utf8))
      transport.close()
      try await client.lost.value
      XCTAssertEqual(client.events, ["made", "lost"])
      server.close()
      try await server.waitClosed()
    }
  }

  func testBufferedProtocolReceivesIntoItsMemory() throws {
    try runMain {
      let loop = try getRunningLoop()
      let payload = Array((0..<100).map { UInt8($0) })
      let server = try await loop.startServer(host: "127.0.0.1", port: 0) { _, writer in
        try writer.write(payload)
        writer.close()
      }
      let client = BufferedRecorder(loop: loop)
      _ = try await loop.createConnection({ client }, host: "127.0.0.1", port: server.sockets[0].port)
      try await client.lost.value
      XCTAssertEqual(client.received, payload)  // in pieces of at most 7 bytes
      server.close()
      try await server.waitClosed()
    }
  }

  func testConnectionRefusedListsTheAddress() throws {
    try runMain {
      let loop = try getRunningLoop()
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      defer { close(fd) }
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
      }
      _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
      }
      let port = Int(UInt16(bigEndian: address.sin_port))
      do {
        _ = try await loop.openConnection(host: "127.0.0.1", port: port)
        XCTFail("expected ECONNREFUSED")
      } catch let error as OSError {
        XCTAssertEqual(error.errno, ECONNREFUSED)
        XCTAssertTrue(error.message.contains("127.0.0.1"))
      }
    }
  }

  func testStreamsEchoWithLinesAndChunks() throws {
    try runMain {
      let loop = try getRunningLoop()
      let server = try await loop.startServer(host: "127.0.0.1", port: 0) { reader, writer in
        for try await line in reader.lines {
          try writer.write(line)
          try await writer.drain()
        }
        writer.close()
      }
      let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: server.sockets[0].port)
      try writer.writeLines([Array("one\n".utf8), Array("two\n".utf8)])
      let one = try await reader.readLine()
      XCTAssertEqual(one, Array("one\n".utf8))
      let two = try await reader.readUntil(anyOf: [Array("\r\n".utf8), Array("\n".utf8)])
      XCTAssertEqual(two, Array("two\n".utf8))
      // No newline: the server's readline gives it back at our EOF.
      try writer.write(Array("abcdef".utf8))
      writer.writeEOF()
      let three = try await reader.readExactly(3)
      XCTAssertEqual(three, Array("abc".utf8))
      var rest: [UInt8] = []
      for try await chunk in reader.chunks(of: 2) { rest += chunk }
      XCTAssertEqual(rest, Array("def".utf8))
      XCTAssertTrue(reader.atEOF)
      writer.close()
      try await writer.waitClosed()
      server.close()
      try await server.waitClosed()
    }
  }

  func testIncompleteReadCarriesThePartialBytes() throws {
    try runMain {
      let loop = try getRunningLoop()
      let reader = try StreamReader(loop: loop)
      try Array("abc".utf8).withUnsafeBytes { try reader.feedData($0) }
      reader.feedEOF()
      do {
        _ = try await reader.readExactly(5)
        XCTFail("expected IncompleteReadError")
      } catch let error as IncompleteReadError {
        XCTAssertEqual(error.partial, Array("abc".utf8))
        XCTAssertEqual(error.expected, 5)
      }
    }
  }

  func testCancelledReadLosesNothing() throws {
    try runMain {
      let loop = try getRunningLoop()
      let reader = try StreamReader(loop: loop)
      let read = try spawn { try await reader.readExactly(4) }
      try await yieldIterations()
      try Array("ab".utf8).withUnsafeBytes { try reader.feedData($0) }
      try await yieldIterations()
      read.cancel()
      do { _ = try await read.value; XCTFail("expected a cancellation") } catch is CancelledError {}
      try Array("cd".utf8).withUnsafeBytes { try reader.feedData($0) }
      let all = try await reader.readExactly(4)
      XCTAssertEqual(all, Array("abcd".utf8))
    }
  }

  func testUnixServerAndTimeoutOnARead() throws {
    try runMain {
      let loop = try getRunningLoop()
      let path = "/tmp/aios-swift-test-\(getpid()).sock"
      let server = try await loop.startUnixServer(path: path) { reader, writer in
        _ = try await reader.read()  // waits until the client goes
        writer.close()
      }
      let (reader, writer) = try await loop.openUnixConnection(path: path)
      do {
        try await timeout(0.05) { _ = try await reader.read(10) }
        XCTFail("expected TimeoutError")
      } catch is TimeoutError {}
      writer.close()
      try await writer.waitClosed()
      server.close()
      try await server.waitClosed()
      XCTAssertNotEqual(access(path, F_OK), 0, "the server removed its socket file")
    }
  }

  func testSlowReaderPausesTheWriter() throws {
    try runMain {
      let loop = try getRunningLoop()
      let started = loop.createFuture(of: Void.self)
      let release = loop.createFuture(of: Void.self)
      let server = try await loop.startServer(host: "127.0.0.1", port: 0) { reader, writer in
        try started.setResult(())
        try await release.value
        var total = 0
        while true {
          let chunk = try await reader.read(1 << 16)
          if chunk.isEmpty { break }
          total += chunk.count
        }
        try writer.write(Array(String(total).utf8))
        writer.close()
      }
      let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: server.sockets[0].port)
      try await started.value
      let block = [UInt8](repeating: 7, count: 1 << 16)
      var sent = 0
      var paused = false
      for _ in 0..<400 {
        try writer.write(block)
        sent += block.count
        if writer.transport.writeBufferSize > writer.transport.highWater {
          paused = true
          break
        }
        try await writer.drain()
      }
      XCTAssertTrue(paused, "the transport's buffer grew above its high-water mark")
      let drained = try spawn { try await writer.drain() }
      try await yieldIterations(3)
      XCTAssertFalse(drained.isDone, "drain waits while writing is paused")
      try release.setResult(())
      try await drained.value
      writer.writeEOF()
      let answer = try await reader.read()
      XCTAssertEqual(answer, Array(String(sent).utf8))
      writer.close()
      server.close()
      try await server.waitClosed()
    }
  }

  /// test_server.py's test_wait_closed_basic and serve_forever: wait_closed
  /// waits for close and for the last client; cancelling serve_forever
  /// closes the server.
  func testWaitClosedAndServeForever() throws {
    try runMain {
      let loop = try getRunningLoop()
      let server = try await loop.startServer(host: "127.0.0.1", port: 0, options: {
        var options = ServerOptions()
        options.startServing = false
        return options
      }()) { reader, writer in
        _ = try await reader.read()
        writer.close()
      }
      XCTAssertFalse(server.isServing)
      let forever = try spawn { try await server.serveForever() }
      try await yieldIterations()
      XCTAssertTrue(server.isServing)
      let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: server.sockets[0].port)
      let closed = try spawn { try await server.waitClosed() }
      try await yieldIterations(3)
      XCTAssertFalse(closed.isDone)
      forever.cancel()
      try await yieldIterations(3)
      XCTAssertTrue(server.isClosed)
      // serve_forever, like wait_closed, waits for the last client (3.12+).
      XCTAssertFalse(forever.isDone)
      XCTAssertFalse(closed.isDone, "a client is still connected")
      writer.close()
      _ = try await reader.read()
      do { try await forever.value; XCTFail("expected a cancellation") } catch is CancelledError {}
      try await closed.value
      XCTAssertEqual(server.clientCount, 0)
    }
  }

  /// A peer that resets while a read waits: the read fails with ECONNRESET.
  func testResetDuringReadFailsTheRead() throws {
    try runMain {
      let loop = try getRunningLoop()
      let server = try await loop.startServer(host: "127.0.0.1", port: 0) { _, writer in
        writer.transport.abort()
      }
      let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: server.sockets[0].port)
      do {
        _ = try await reader.readExactly(10)
        XCTFail("expected an error")
      } catch let error as IncompleteReadError {
        XCTAssertEqual(error.partial, [])  // the peer's abort may reach us as EOF
      } catch let error as OSError {
        XCTAssertEqual(error.errno, ECONNRESET)
      }
      writer.close()
      server.close()
      try await server.waitClosed()
    }
  }

  /// A write the socket fails (the peer reset, unread): the transport is
  /// closing at once, and closingError holds what connection_lost gets.
  func testWriteToAResetPeerClosesAtOnceWithItsError() throws {
    try runMain {
      let loop = try getRunningLoop()
      let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
          XCTAssertEqual(bind(listener, raw, length), 0)
          XCTAssertEqual(listen(listener, 1), 0)
          XCTAssertEqual(getsockname(listener, raw, &length), 0)
        }
      }
      let client = RecordingProtocol(loop: loop)
      let transport = try await loop.createConnection({ client }, host: "127.0.0.1",
                                                      port: Int(UInt16(bigEndian: address.sin_port)))
      let peer = accept(listener, nil, nil)
      XCTAssertGreaterThanOrEqual(peer, 0)
      XCTAssertNil(transport.closingError)
      var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
      XCTAssertEqual(setsockopt(peer, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)), 0)
      close(peer)
      close(listener)
      var watch = pollfd(fd: try XCTUnwrap(transport.fileDescriptor), events: Int16(POLLIN), revents: 0)
      XCTAssertEqual(poll(&watch, 1, 10_000), 1)  // the reset is in, unread
      XCTAssertFalse(transport.isClosing)
      try Array("x".utf8).withUnsafeBytes { try transport.write($0) }
      XCTAssertTrue(transport.isClosing)
      let error = try XCTUnwrap(transport.closingError as? OSError)
      XCTAssertTrue(error.errno == ECONNRESET || error.errno == EPIPE, "\(error)")
      try await client.lost.value
      XCTAssertEqual(client.events, ["made", "lost \(error)"])
      XCTAssertNil(transport.closingError)
    }
  }

  /// test_streams.py's test_unhandled_exception and test_unhandled_cancel:
  /// a client handler that fails is reported and its connection closed; one
  /// that is cancelled is not reported.
  func testClientHandlerFailureAndCancel() throws {
    try runMain {
      let loop = try getRunningLoop()
      var reports: [String] = []
      loop.exceptionHandler = { _, context in reports.append(context.message) }
      defer { loop.exceptionHandler = nil }
      let failing = try await loop.startServer(host: "127.0.0.1", port: 0) { _, _ in
        throw OSError(errno: EPROTO)
      }
      let (reader, writer) = try await loop.openConnection(host: "127.0.0.1", port: failing.sockets[0].port)
      let rest = try await reader.read()
      XCTAssertEqual(rest, [], "the failed handler's connection was closed")
      XCTAssertEqual(reports, ["Unhandled exception in client_connected_cb"])
      writer.close()
      failing.close()
      try await failing.waitClosed()

      reports = []
      let cancelled = try await loop.startServer(host: "127.0.0.1", port: 0) { _, writer in
        writer.close()
        throw CancelledError()
      }
      let (reader2, writer2) = try await loop.openConnection(host: "127.0.0.1", port: cancelled.sockets[0].port)
      _ = try await reader2.read()
      try await yieldIterations(3)
      XCTAssertEqual(reports, [])
      writer2.close()
      cancelled.close()
      try await cancelled.waitClosed()
    }
  }
}
