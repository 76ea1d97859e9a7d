import AioSwift
import Glibc
import XCTest

/// Records what a datagram endpoint receives; echoes when asked to.
private final class Recorder: DatagramProtocol {
  var transport: DatagramTransport?
  var received: [(String, SocketAddress?)] = []
  var errors: [Int32] = []
  var lost = 0
  let echo: Bool
  let arrived: Future<Void>
  let expected: Int
  init(loop: Loop, echo: Bool = false, expected: Int = 1) {
    self.echo = echo
    self.expected = expected
    arrived = loop.createFuture()
  }
  func connectionMade(_ transport: DatagramTransport) { self.transport = transport }
  func datagramReceived(_ data: UnsafeRawBufferPointer, from address: SocketAddress?) {
    received.append((String(decoding: data, as: UTF8.self), address))
    if echo { try? transport?.sendto(data, address: address) }
    if received.count == expected, !arrived.isDone { try? arrived.setResult(()) }
  }
  func errorReceived(_ error: any Error) {
    errors.append((error as? OSError)?.errno ?? -1)
    if !arrived.isDone { try? arrived.setResult(()) }
  }
  func connectionLost(_ error: (any Error)?) { lost += 1 }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

final class DatagramTests: LeakCheckedTestCase {
  func testUDPRoundTrip() throws {
    try runMain {
      let loop = try getRunningLoop()
      let server = Recorder(loop: loop, echo: true)
      let serverTransport = try await loop.createDatagramEndpoint({ server }, localAddress: ("127.0.0.1", 0))
      let port = serverTransport.socketName!.port
      let client = Recorder(loop: loop)
      let clientTransport = try await loop.createDatagramEndpoint({ client }, remoteAddress: ("127.0.0.1", port))
      XCTAssertEqual(clientTransport.peerName?.port, port)
      try bytes("ping").withUnsafeBytes { try clientTransport.sendto($0) }
      try await waitFor(client.arrived, timeout: 5)
      XCTAssertEqual(client.received.first?.0, "ping")
      XCTAssertEqual(server.received.first?.1?.port, clientTransport.socketName?.port)
      // A connected transport refuses another address.
      XCTAssertThrowsError(try bytes("x").withUnsafeBytes {
        try clientTransport.sendto($0, address: try SocketAddress(ip: "127.0.0.1", port: 9))
      })
      clientTransport.close()
      serverTransport.close()
      try await yieldIterations(2)
      XCTAssertEqual(client.lost, 1)
      XCTAssertEqual(server.lost, 1)
    }
  }

  func testIPv6KeepsScopeAndUnixDatagrams() throws {
    try runMain {
      let loop = try getRunningLoop()
      if let server6 = try? await loop.createDatagramEndpoint({ Recorder(loop: loop, echo: true) },
                                                              localAddress: ("::1", 0)) {
        let client = Recorder(loop: loop)
        let transport = try await loop.createDatagramEndpoint({ client },
                                                              remoteAddress: ("::1", server6.socketName!.port))
        try bytes("six").withUnsafeBytes { try transport.sendto($0) }
        try await waitFor(client.arrived, timeout: 5)
        XCTAssertEqual(client.received.first?.0, "six")
        XCTAssertEqual(client.received.first?.1?.family, AF_INET6)
        transport.close()
        server6.close()
      } else {
        print("testIPv6KeepsScopeAndUnixDatagrams: no IPv6 on this machine, skipped that half")
      }
      let directory = "/tmp/aio-dgram-\(getpid())"
      mkdir(directory, 0o700)
      defer { rmdir(directory) }
      let serverPath = directory + "/server", clientPath = directory + "/client"
      let server = Recorder(loop: loop, echo: true)
      let serverTransport = try await loop.createUnixDatagramEndpoint({ server }, localPath: serverPath)
      let client = Recorder(loop: loop)
      let clientTransport = try await loop.createUnixDatagramEndpoint({ client }, localPath: clientPath,
                                                                      remotePath: serverPath)
      try bytes("unix").withUnsafeBytes { try clientTransport.sendto($0) }
      try await waitFor(client.arrived, timeout: 5)
      XCTAssertEqual(client.received.first?.0, "unix")
      XCTAssertEqual(server.received.first?.1?.path, clientPath)
      clientTransport.close()
      serverTransport.close()
      try await yieldIterations(2)
      unlink(serverPath)
      unlink(clientPath)
    }
  }

  func testConnectedSocketGetsICMPErrors() throws {
    try runMain {
      let loop = try getRunningLoop()
      // A port nothing listens on: bound, then closed.
      let probe = try await loop.createDatagramEndpoint({ Recorder(loop: loop) }, localAddress: ("127.0.0.1", 0))
      let port = probe.socketName!.port
      probe.close()
      try await yieldIterations(2)
      let client = Recorder(loop: loop)
      let transport = try await loop.createDatagramEndpoint({ client }, remoteAddress: ("127.0.0.1", port))
      try bytes("anyone?").withUnsafeBytes { try transport.sendto($0) }
      try await waitFor(client.arrived, timeout: 5)
      XCTAssertEqual(client.errors.first, ECONNREFUSED)
      XCTAssertFalse(transport.isClosing, "an error leaves the transport open")
      transport.close()
      try await yieldIterations(2)
    }
  }

  func testBroadcastAllowedOrRefused() throws {
    try runMain {
      let loop = try getRunningLoop()
      let refused = Recorder(loop: loop)
      let plain = try await loop.createDatagramEndpoint({ refused }, localAddress: ("0.0.0.0", 0))
      try bytes("all").withUnsafeBytes {
        try plain.sendto($0, address: try SocketAddress(ip: "255.255.255.255", port: 9))
      }
      try await waitFor(refused.arrived, timeout: 5)
      XCTAssertEqual(refused.errors.first, EACCES)
      plain.close()
      var options = DatagramOptions()
      options.allowBroadcast = true
      let allowed = Recorder(loop: loop)
      let broadcaster = try await loop.createDatagramEndpoint({ allowed }, localAddress: ("0.0.0.0", 0),
                                                              options: options)
      try bytes("all").withUnsafeBytes {
        try broadcaster.sendto($0, address: try SocketAddress(ip: "255.255.255.255", port: 9))
      }
      try await yieldIterations(3)
      XCTAssertEqual(allowed.errors, [], "the send was allowed")
      broadcaster.close()
      try await yieldIterations(2)
    }
  }

  func testManyDatagramsWithoutLoss() throws {
    try runMain {
      let loop = try getRunningLoop()
      let count = 100  // within the receive buffer: loopback loses none then
      let server = Recorder(loop: loop, expected: count)
      let serverTransport = try await loop.createDatagramEndpoint({ server }, localAddress: ("127.0.0.1", 0))
      let client = try await loop.createDatagramEndpoint({ Recorder(loop: loop) },
                                                         remoteAddress: ("127.0.0.1", serverTransport.socketName!.port))
      for index in 0..<count { try bytes("d\(index)").withUnsafeBytes { try client.sendto($0) } }
      try await waitFor(server.arrived, timeout: 10)
      XCTAssertEqual(server.received.map(\.0), (0..<count).map { "d\($0)" })
      client.close()
      serverTransport.close()
      try await yieldIterations(2)
    }
  }

  func testDescriptorWatchers() throws {
    var pair: [Int32] = [-1, -1]
    XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
    defer { close(pair[1]) }
    try runMain {
      let loop = try getRunningLoop()
      var reads = 0, replaced = 0, writes = 0
      try loop.addReader(pair[0]) { reads += 1 }
      try loop.addReader(pair[0]) {
        replaced += 1
        var byte: UInt8 = 0
        _ = read(pair[0], &byte, 1)
      }
      try await yieldIterations(2)
      XCTAssertEqual(replaced, 0, "nothing to read yet")
      var byte: UInt8 = 7
      _ = write(pair[1], &byte, 1)
      try await yieldIterations(3)
      XCTAssertEqual(reads, 0, "replaced")
      XCTAssertEqual(replaced, 1)
      try loop.addWriter(pair[0]) { writes += 1 }
      try await yieldIterations(2)
      XCTAssertGreaterThan(writes, 0)
      XCTAssertTrue(try loop.removeWriter(pair[0]))
      XCTAssertFalse(try loop.removeWriter(pair[0]))
      XCTAssertTrue(try loop.removeReader(pair[0]))
      XCTAssertFalse(try loop.removeReader(pair[0]))
      // A descriptor closed under its watcher is survived; the watcher goes.
      var other: [Int32] = [-1, -1]
      XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &other), 0)
      try loop.addReader(other[0]) {}
      close(other[0])
      close(other[1])
      try await yieldIterations(3)
      _ = try loop.removeReader(other[0])
      // A transport's descriptor is refused.
      let transport = try await loop.createDatagramEndpoint({ Recorder(loop: loop) }, localAddress: ("127.0.0.1", 0))
      var socketFd: Int32 = -1
      socketFd = transport.fileDescriptor
      XCTAssertThrowsError(try loop.addReader(socketFd) {})
      transport.close()
      try await yieldIterations(2)
      close(pair[0])
    }
  }
}
