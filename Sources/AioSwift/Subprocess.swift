// Child processes: asyncio's subprocess transport and protocol
// (base_subprocess.py) on libuv's uv_spawn, and asyncio.subprocess.Process
// on its streams.
internal import CAioSwift
internal import CLibUV
import Glibc

/// Where a child's standard stream goes (asyncio's stdin=, stdout=, stderr=).
public enum ChildStream: Sendable, Equatable {
  /// The parent's own (asyncio's None).
  case inherit
  /// A pipe to the parent (asyncio.subprocess.PIPE).
  case pipe
  /// /dev/null (asyncio.subprocess.DEVNULL).
  case devNull
  /// stderr only: wherever stdout goes (asyncio.subprocess.STDOUT).
  case stdout
  /// A descriptor of the parent's, which stays the caller's.
  case descriptor(Int32)
}

/// How a child is started, beyond its program and arguments.
public struct SpawnOptions: Sendable {
  public var stdin = ChildStream.inherit
  public var stdout = ChildStream.inherit
  public var stderr = ChildStream.inherit
  /// The child's working directory (nil: the parent's).
  public var cwd: String?
  /// "NAME=value" entries: the child's whole environment, or with
  /// `extendEnvironment` what is added to (or replaced in) the parent's.
  public var environment: [String]?
  public var extendEnvironment = false
  /// setsid() in the child (asyncio's start_new_session).
  public var startNewSession = false
  /// setpgid(0, group) in the child (asyncio's process_group; 0: a group
  /// of its own).
  public var processGroup: Int32?
  /// Descriptors the child keeps; every other one above 2 is closed (asyncio's
  /// close_fds=True with pass_fds).
  public var passFds: [Int32] = []
  /// The buffer limit of a Process's readers.
  public var limit = defaultStreamLimit
  public init() {}
}

/// asyncio.SubprocessProtocol.
public protocol SubprocessProtocol: AnyObject {
  func connectionMade(_ transport: SubprocessTransport)
  /// Bytes the child wrote to its stdout (1) or stderr (2).
  func pipeDataReceived(fd: Int32, _ data: UnsafeRawBufferPointer)
  /// A pipe closed: error nil for an EOF or a close.
  func pipeConnectionLost(fd: Int32, _ error: (any Error)?)
  func processExited()
  /// The child exited and every pipe is closed.
  func connectionLost(_ error: (any Error)?)
  /// The child's stdin went above its high-water mark, or back down.
  func pauseWriting()
  func resumeWriting()
}

extension SubprocessProtocol {
  public func connectionMade(_ transport: SubprocessTransport) {}
  public func pipeDataReceived(fd: Int32, _ data: UnsafeRawBufferPointer) {}
  public func pipeConnectionLost(fd: Int32, _ error: (any Error)?) {}
  public func processExited() {}
  public func connectionLost(_ error: (any Error)?) {}
  public func pauseWriting() {}
  public func resumeWriting() {}
}

/// A returncode as asyncio reports it: the exit status, or minus the signal.
func returnCode(status: Int64, signal: Int32) -> Int32 { signal != 0 ? -signal : Int32(truncatingIfNeeded: status) }

/// asyncio's base_subprocess.BaseSubprocessTransport.
public final class SubprocessTransport: CustomStringConvertible {
  public let loop: Loop
  public let pid: Int32
  public private(set) var returncode: Int32?
  private let process: UnsafeMutablePointer<uv_process_t>
  private var subprocessProtocol: (any SubprocessProtocol)?
  /// The pipe transports of fds 0, 1 and 2 (nil where there is no pipe).
  private var pipes: [StreamTransport?] = [nil, nil, nil]
  private var pipeOpen: [Bool] = [false, false, false]
  /// connection_made has run: until then the exit waits (asyncio's
  /// _pending_calls).
  private var connected = false
  public private(set) var isClosing = false
  private var finished = false
  /// connection_lost ran: the transport is done (asyncio's _proc is None).
  private var isDone = false
  private var processHandleClosed = false
  private var exitWaiters: [(Int32) -> Void] = []
  /// Held until the child is reaped and connection_lost ran, whoever else
  /// holds the transport.
  private var keepAlive: Unmanaged<SubprocessTransport>?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  private init(loop: Loop, process: UnsafeMutablePointer<uv_process_t>) {
    self.loop = loop
    self.process = process
    pid = process.pointee.pid
    LiveObjects.subprocesses.add(1, ordering: .relaxed)
    keepAlive = Unmanaged.passRetained(self)
    process.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    loop.ioOpened(self) { [unowned self] in self.loopClosing() }
  }

  deinit {
    process.deallocate()
    LiveObjects.subprocesses.subtract(1, ordering: .relaxed)
  }

  /// Starts `program` (searched in PATH) with argv [program] + `arguments`. A failure
  /// to start (no such program, not executable, a bad cwd) throws its
  /// OSError here. connection_made runs soon, then `done`.
  package static func spawn(loop: Loop, program: String, arguments: [String], options: SpawnOptions,
                            protocol makeProtocol: any SubprocessProtocol,
                            done: @escaping (SubprocessTransport) -> Void) throws -> SubprocessTransport {
    try loop.checkUsable()
    var plan = try StdioPlan(options)
    defer { plan.closeChildEnds() }
    let process = UnsafeMutablePointer<uv_process_t>.allocate(capacity: 1)
    let rc = try withSpawnOptions(program: program, arguments: arguments, options: options, plan: plan) { uvOptions in
      let keep = options.passFds.sorted()
      let armed = aiosi_spawn_arm(keep, keep.count, options.processGroup ?? -1)
      guard armed == 0 else { return armed }
      defer { aiosi_spawn_disarm() }
      return uv_spawn(loop.uv, process, &uvOptions)
    }
    guard rc == 0 else {
      plan.closeParentEnds()
      if process.pointee.loop == loop.uv {
        closeAndFree(UnsafeMutableRawPointer(process))
      } else {
        process.deallocate()
      }
      throw rc == -Int32(E2BIG) ? RuntimeError(code: AIOS_EINVAL.rawValue, "too many pass_fds") : uvError(rc)
    }
    let transport = SubprocessTransport(loop: loop, process: process)
    transport.subprocessProtocol = makeProtocol
    transport.openPipes(plan)
    // asyncio's _connect_pipes: the pipes' connection_made, then the
    // protocol's, then the outcome.
    do {
      try loop.callSoon { [transport] in
        transport.connect()
        done(transport)
      }
    } catch {
      transport.close()
      throw error
    }
    return transport
  }

  private func openPipes(_ plan: StdioPlan) {
    for fd in 0..<3 {
      guard let parentEnd = plan.parentEnds[fd] else { continue }
      let handle = StreamTransport.allocateHandle()
      var rc = uv_pipe_init(loop.uv, handle.assumingMemoryBound(to: uv_pipe_t.self), 0)
      if rc == 0 { rc = uv_pipe_open(handle.assumingMemoryBound(to: uv_pipe_t.self), parentEnd) }
      guard rc == 0 else {
        Glibc.close(parentEnd)
        closeAndFree(handle)
        continue
      }
      pipes[fd] = StreamTransport(loop: loop, handle: handle, kind: fd == 0 ? .writePipe : .readPipe)
    }
  }

  private func connect() {
    for fd in 0..<3 {
      guard let pipe = pipes[fd] else { continue }
      pipeOpen[fd] = true
      pipe.start(SubprocessPipe(self, Int32(fd)))
    }
    connected = true
    subprocessProtocol?.connectionMade(self)
    if returncode != nil {
      later { $0.subprocessProtocol?.processExited() }
      tryFinish()
    }
  }

  /// asyncio's _call: the protocol's callbacks run as callbacks of the loop.
  private func later(_ body: @escaping (SubprocessTransport) -> Void) {
    do {
      try loop.callSoon { [self] in body(self) }
    } catch {
      body(self)  // the loop is closing: nothing runs later
    }
  }

  // MARK: Events

  fileprivate func pipeData(_ fd: Int32, _ data: UnsafeRawBufferPointer) {
    subprocessProtocol?.pipeDataReceived(fd: fd, data)
  }

  fileprivate func pipeLost(_ fd: Int32, _ error: (any Error)?) {
    pipeOpen[Int(fd)] = false
    later { $0.subprocessProtocol?.pipeConnectionLost(fd: fd, error) }
    tryFinish()
  }

  fileprivate func pipePaused(_ paused: Bool) {
    if paused { subprocessProtocol?.pauseWriting() } else { subprocessProtocol?.resumeWriting() }
  }

  fileprivate func exited(status: Int64, signal: Int32) {
    returncode = returnCode(status: status, signal: signal)
    closeProcessHandle()
    guard connected else { return }
    later { $0.subprocessProtocol?.processExited() }
    tryFinish()
  }

  /// connection_lost once the child exited and every pipe closed; wait()
  /// returns then (asyncio 3.12 and later).
  private func tryFinish() {
    guard !finished, returncode != nil, connected, !pipeOpen.contains(true) else { return }
    finished = true
    later { transport in
      let lost = transport.subprocessProtocol
      transport.subprocessProtocol = nil
      transport.isDone = true
      lost?.connectionLost(nil)
      transport.wakeWaiters()
      // Last: this may free the transport.
      let keep = transport.keepAlive
      transport.keepAlive = nil
      keep?.release()
    }
  }

  private func wakeWaiters() {
    let waiters = exitWaiters
    exitWaiters = []
    for waiter in waiters { waiter(returncode ?? 0) }
  }

  /// Calls `body` with the returncode once the child exited and its pipes
  /// closed (at once if so already).
  package func whenFinished(_ body: @escaping (Int32) -> Void) {
    if isDone, let code = returncode { body(code) } else { exitWaiters.append(body) }
  }

  // MARK: Control

  /// The transport of the child's fd 0, 1 or 2, or nil without a pipe there.
  public func pipeTransport(fd: Int32) -> StreamTransport? {
    guard fd >= 0, fd < 3 else { return nil }
    return pipes[Int(fd)]
  }

  /// asyncio's send_signal: ProcessLookupError once the transport finished
  /// (connection_lost ran); nothing once the child exited, so a reaped pid
  /// is never signalled.
  public func sendSignal(_ signum: Int32) throws {
    guard !isDone else { throw OSError(errno: ESRCH) }
    guard returncode == nil else { return }
    let rc = uv_process_kill(process, signum)
    if rc != 0 { throw uvError(rc) }
  }

  public func terminate() throws { try sendSignal(SIGTERM) }
  public func kill() throws { try sendSignal(SIGKILL) }

  /// asyncio's close: closes the pipes, and kills a child still running
  /// (it is reaped when it exits).
  public func close() {
    guard !isClosing else { return }
    isClosing = true
    for pipe in pipes { pipe?.close() }
    if returncode == nil { _ = uv_process_kill(process, SIGKILL) }
  }

  /// The loop closes: a child still running is killed and reaped here, as
  /// nothing will watch for its exit any more.
  private func loopClosing() {
    for pipe in pipes { pipe?.abort() }
    defer {
      // Never connected: nothing will finish it.
      if !connected {
        let keep = keepAlive
        keepAlive = nil
        keep?.release()
      }
    }
    if returncode == nil {
      _ = uv_process_kill(process, SIGKILL)
      var status: Int32 = 0
      var rc: pid_t
      repeat { rc = waitpid(pid, &status, 0) } while rc < 0 && errno == EINTR
      if rc == pid {
        exited(status: Int64((status >> 8) & 0xff), signal: status & 0x7f)
      } else {
        returncode = -SIGKILL
        closeProcessHandle()
      }
    }
  }

  private func closeProcessHandle() {
    guard !processHandleClosed else { return }
    processHandleClosed = true
    loop.ioClosed(self)
    // The handle holds the transport until libuv is done with it.
    process.pointee.data = Unmanaged.passRetained(self).toOpaque()
    uv_close(UnsafeMutableRawPointer(process).assumingMemoryBound(to: uv_handle_t.self)) { handle in
      guard let data = handle?.pointee.data else { return }
      Unmanaged<SubprocessTransport>.fromOpaque(data).release()
    }
  }

  public var description: String {
    "<SubprocessTransport pid=\(pid) \(returncode.map { "returncode=\($0)" } ?? "running")>"
  }
}

/// The protocol of one of a child's pipes (asyncio's
/// WriteSubprocessPipeProto and ReadSubprocessPipeProto).
private final class SubprocessPipe: StreamProtocol {
  unowned let owner: SubprocessTransport
  let fd: Int32
  init(_ owner: SubprocessTransport, _ fd: Int32) {
    self.owner = owner
    self.fd = fd
  }
  func connectionMade(_ transport: StreamTransport) {}
  func dataReceived(_ data: UnsafeRawBufferPointer) { owner.pipeData(fd, data) }
  func eofReceived() -> Bool { false }
  func connectionLost(_ error: (any Error)?) { owner.pipeLost(fd, error) }
  func pauseWriting() { owner.pipePaused(true) }
  func resumeWriting() { owner.pipePaused(false) }
}

private func processExited(_ process: UnsafeMutablePointer<uv_process_t>?, _ status: Int64, _ signal: Int32) {
  guard let data = process?.pointee.data else { return }
  Unmanaged<SubprocessTransport>.fromOpaque(data).takeUnretainedValue().exited(status: status, signal: signal)
}

// MARK: Spawning

/// The child's fds 0, 1, 2: what each is in the child, and the parent's
/// ends of the pipes made for it.
private struct StdioPlan {
  var childFds: [Int32] = [0, 1, 2]
  var parentEnds: [Int32?] = [nil, nil, nil]
  /// Descriptors made for the child alone, closed once it started.
  var childEnds: [Int32] = []

  init(_ options: SpawnOptions) throws {
    do {
      for (fd, mode) in [options.stdin, options.stdout, options.stderr].enumerated() {
        switch mode {
        case .inherit: childFds[fd] = Int32(fd)
        case .descriptor(let given):
          guard given >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad file descriptor \(given)") }
          childFds[fd] = given
        case .devNull:
          let null = open("/dev/null", O_RDWR | O_CLOEXEC)
          guard null >= 0 else { throw OSError(errno: errno) }
          childEnds.append(null)
          childFds[fd] = null
        case .stdout:
          guard fd == 2 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "STDOUT is only for stderr") }
          childFds[2] = childFds[1]
        case .pipe:
          var ends: [Int32] = [-1, -1]
          let rc = aiosi_pipe(&ends)
          guard rc == 0 else { throw OSError(errno: -rc) }
          // fd 0 is read by the child; 1 and 2 are written by it.
          let (child, parent) = fd == 0 ? (ends[0], ends[1]) : (ends[1], ends[0])
          childEnds.append(child)
          parentEnds[fd] = parent
          childFds[fd] = child
        }
      }
    } catch {
      closeChildEnds()
      closeParentEnds()
      throw error
    }
  }

  mutating func closeChildEnds() {
    for fd in childEnds { Glibc.close(fd) }
    childEnds = []
  }

  mutating func closeParentEnds() {
    for case let fd? in parentEnds { Glibc.close(fd) }
    parentEnds = [nil, nil, nil]
  }
}

/// The environment as "NAME=value" entries: `given` alone, or the parent's
/// with `given` replacing entries of the same name.
private func childEnvironment(_ given: [String], extending: Bool) -> [String] {
  guard extending else { return given }
  func name(_ entry: String) -> Substring { entry.prefix { $0 != "=" } }
  let replaced = Set(given.map(name))
  var result: [String] = []
  var entry = environ
  while let pointer = entry.pointee {
    let text = String(cString: pointer)
    if !replaced.contains(name(text)) { result.append(text) }
    entry += 1
  }
  return result + given
}

/// Runs `body` with libuv's options for the spawn, in C strings that live
/// for the call.
private func withSpawnOptions(program: String, arguments: [String], options: SpawnOptions, plan: StdioPlan,
                              _ body: (inout uv_process_options_t) -> Int32) throws -> Int32 {
  guard !program.isEmpty else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no program") }
  for fd in options.passFds where fd < 0 {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad value(s) in fds_to_keep")
  }
  let strings = ([program] + arguments + (options.environment.map {
    childEnvironment($0, extending: options.extendEnvironment)
  } ?? []) + [options.cwd ?? ""])
  guard !strings.contains(where: { $0.utf8.contains(0) }) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "embedded null byte")
  }
  let copies = strings.map { strdup($0) }
  defer { for copy in copies { free(copy) } }
  let argumentCount = arguments.count
  var argv: [UnsafeMutablePointer<CChar>?] = Array(copies[0..<(1 + argumentCount)]) + [nil]
  let environmentCount = copies.count - 2 - argumentCount
  var envp: [UnsafeMutablePointer<CChar>?] = Array(copies[(1 + argumentCount)..<(1 + argumentCount + environmentCount)]) + [nil]
  // fds 0-2, then each passed fd at its own number (libuv keeps an fd
  // mapped onto itself open across exec); the numbers between are left alone.
  let count = max(3, (options.passFds.max() ?? 0) + 1)
  var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: Int(count))
  for fd in 0..<Int(count) {
    if fd < 3 {
      stdio[fd].flags = UV_INHERIT_FD
      stdio[fd].data.fd = plan.childFds[fd]
    } else if options.passFds.contains(Int32(fd)) {
      stdio[fd].flags = UV_INHERIT_FD
      stdio[fd].data.fd = Int32(fd)
    } else {
      stdio[fd].flags = UV_IGNORE
    }
  }
  return argv.withUnsafeMutableBufferPointer { argvBuffer in
    envp.withUnsafeMutableBufferPointer { envpBuffer in
      stdio.withUnsafeMutableBufferPointer { stdioBuffer in
        var uvOptions = uv_process_options_t()
        uvOptions.exit_cb = processExited
        uvOptions.file = UnsafePointer(copies[0])
        uvOptions.args = argvBuffer.baseAddress
        uvOptions.env = options.environment == nil ? nil : envpBuffer.baseAddress
        uvOptions.cwd = options.cwd == nil ? nil : UnsafePointer(copies[copies.count - 1])
        uvOptions.flags = options.startNewSession ? UV_PROCESS_DETACHED.rawValue : 0
        uvOptions.stdio_count = count
        uvOptions.stdio = stdioBuffer.baseAddress
        return body(&uvOptions)
      }
    }
  }
}

// MARK: asyncio.subprocess

/// asyncio.subprocess.SubprocessStreamProtocol: the child's stdout and
/// stderr feed readers, its stdin is a writer with drain.
final class SubprocessStreamProtocol: SubprocessProtocol {
  let loop: Loop
  let limit: Int
  private(set) var stdout: StreamReader?
  private(set) var stderr: StreamReader?
  /// The stdin pipe's flow control, for the writer's drain.
  private var stdinProtocol: StreamReaderProtocol?
  private(set) var stdin: StreamWriter?
  private var openPipes: Set<Int32> = []
  private var exited = false
  private weak var transport: SubprocessTransport?

  init(loop: Loop, limit: Int) {
    self.loop = loop
    self.limit = limit
  }

  func connectionMade(_ transport: SubprocessTransport) {
    self.transport = transport
    for fd: Int32 in [1, 2] {
      guard let pipe = transport.pipeTransport(fd: fd), let reader = try? StreamReader(loop: loop, limit: limit) else {
        continue
      }
      reader.setTransport(pipe)
      if fd == 1 { stdout = reader } else { stderr = reader }
      openPipes.insert(fd)
    }
    if let pipe = transport.pipeTransport(fd: 0), let reader = try? StreamReader(loop: loop, limit: limit) {
      let flow = StreamReaderProtocol(reader: reader)
      flow.connectionMade(pipe)
      stdinProtocol = flow
      stdin = flow.writer
      openPipes.insert(0)
    }
  }

  func pipeDataReceived(fd: Int32, _ data: UnsafeRawBufferPointer) {
    try? (fd == 1 ? stdout : stderr)?.feedData(data)
  }

  func pipeConnectionLost(fd: Int32, _ error: (any Error)?) {
    if fd == 0 {
      transport?.pipeTransport(fd: 0)?.close()
      stdinProtocol?.connectionLost(error)
    } else if let reader = fd == 1 ? stdout : stderr {
      if let error { reader.setException(error) } else { reader.feedEOF() }
    }
    openPipes.remove(fd)
    maybeCloseTransport()
  }

  func processExited() {
    exited = true
    maybeCloseTransport()
  }

  func pauseWriting() { stdinProtocol?.pauseWriting() }
  func resumeWriting() { stdinProtocol?.resumeWriting() }

  private func maybeCloseTransport() {
    if openPipes.isEmpty && exited { transport?.close() }
  }
}

/// asyncio.subprocess.Process (named apart from Foundation.Process).
public final class AioProcess: CustomStringConvertible {
  public let transport: SubprocessTransport
  private let streams: SubprocessStreamProtocol
  public var stdin: StreamWriter? { streams.stdin }
  public var stdout: StreamReader? { streams.stdout }
  public var stderr: StreamReader? { streams.stderr }

  init(transport: SubprocessTransport, streams: SubprocessStreamProtocol) {
    self.transport = transport
    self.streams = streams
  }

  public var pid: Int32 { transport.pid }
  public var returncode: Int32? { transport.returncode }
  public var loop: Loop { transport.loop }

  /// A future done with the returncode once the child exited and its pipes
  /// closed.
  package func waitFuture() -> Future<Int32> {
    let future = loop.createFuture(of: Int32.self)
    transport.whenFinished { code in if !future.isDone { try? future.setResult(code) } }
    return future
  }

  /// asyncio's wait: the returncode, once the child exited and its pipes
  /// closed (asyncio 3.12 and later).
  public func wait() async throws -> Int32 { try await waitFuture().value }

  public func sendSignal(_ signum: Int32) throws { try transport.sendSignal(signum) }
  public func terminate() throws { try transport.terminate() }
  public func kill() throws { try transport.kill() }

  /// asyncio's communicate: writes `input` to stdin and closes it, while
  /// reading stdout and stderr to their ends, then waits for the child.
  /// Each output is nil when that stream is not a pipe.
  public func communicate(_ input: [UInt8]? = nil) async throws -> (stdout: [UInt8]?, stderr: [UInt8]?) {
    let feeding = try stdin.map { writer in
      try loop.createTask { try await AioProcess.feed(writer, input) }
    }
    let reading = try [(stdout, Int32(1)), (stderr, Int32(2))].map { reader, fd in
      try reader.map { reader in
        try loop.createTask { [transport] in try await AioProcess.readToEnd(reader, transport.pipeTransport(fd: fd)) }
      }
    }
    try await feeding?.value
    let out = try await reading[0]?.value
    let err = try await reading[1]?.value
    _ = try await wait()
    return (out, err)
  }

  private static func feed(_ writer: StreamWriter, _ input: [UInt8]?) async throws {
    do {
      if let input, !input.isEmpty {
        try writer.write(input)
        try await writer.drain()
      }
    } catch let error as OSError where error.errno == EPIPE || error.errno == ECONNRESET {
      // The child stopped reading: asyncio ignores it.
    }
    writer.close()
  }

  private static func readToEnd(_ reader: StreamReader, _ pipe: StreamTransport?) async throws -> [UInt8] {
    let output = try await reader.read()
    pipe?.close()
    return output
  }

  public var description: String { "<Process \(pid)>" }
}

extension Loop {
  /// The protocol and the start of a Process, shared by the exec and shell forms.
  package func spawnProcess(program: String, arguments: [String], options: SpawnOptions,
                            done: @escaping (AioProcess) -> Void) throws -> SubprocessTransport {
    let streams = SubprocessStreamProtocol(loop: self, limit: options.limit)
    return try SubprocessTransport.spawn(loop: self, program: program, arguments: arguments, options: options,
                                         protocol: streams) { transport in
      done(AioProcess(transport: transport, streams: streams))
    }
  }

  /// asyncio's create_subprocess_exec: runs `program` (searched in PATH)
  /// with `arguments`.
  public func createSubprocessExec(_ program: String, _ arguments: [String] = [],
                                   options: SpawnOptions = SpawnOptions()) async throws -> AioProcess {
    let future = createFuture(of: AioProcess.self)
    let transport = try spawnProcess(program: program, arguments: arguments, options: options) { process in
      if !future.isDone { try? future.setResult(process) }
    }
    do {
      return try await future.value
    } catch {
      transport.close()
      throw error
    }
  }

  /// asyncio's create_subprocess_shell: `/bin/sh -c command`.
  public func createSubprocessShell(_ command: String, options: SpawnOptions = SpawnOptions()) async throws -> AioProcess {
    try await createSubprocessExec("/bin/sh", ["-c", command], options: options)
  }

  /// asyncio's connect_read_pipe with a stream: a reader fed by the pipe
  /// `fd`, which it now owns.
  public func openReadPipe(fd: Int32, limit: Int = defaultStreamLimit) async throws -> StreamReader {
    let reader = try StreamReader(loop: self, limit: limit)
    let streamProtocol = StreamReaderProtocol(reader: reader)
    _ = try await pipeTransport(fd: fd, writing: false, streamProtocol)
    return reader
  }

  /// asyncio's connect_write_pipe with a StreamWriter over the pipe `fd`,
  /// which it now owns.
  public func openWritePipe(fd: Int32) async throws -> StreamWriter {
    let streamProtocol = StreamReaderProtocol(reader: try StreamReader(loop: self))
    _ = try await pipeTransport(fd: fd, writing: true, streamProtocol)
    guard let writer = streamProtocol.writer else { throw OSError(errno: EPIPE) }
    return writer
  }

  /// asyncio's connect_read_pipe and connect_write_pipe.
  public func connectPipe(fd: Int32, writing: Bool, _ pipeProtocol: any StreamProtocol) async throws -> StreamTransport {
    try await pipeTransport(fd: fd, writing: writing, pipeProtocol)
  }

  private func pipeTransport(fd: Int32, writing: Bool, _ pipeProtocol: any StreamProtocol) async throws
    -> StreamTransport {
    let future = createFuture(of: StreamTransport.self)
    let connector = try Connector.pipe(loop: self, fd: fd, writing: writing, makeProtocol: { pipeProtocol }) {
      switch $0 {
      case .success(let transport): if !future.isDone { try? future.setResult(transport) } else { transport.abort() }
      case .failure(let error): if !future.isDone { try? future.setError(error) }
      }
    }
    do {
      return try await future.value
    } catch {
      connector.cancel()
      throw error
    }
  }
}
