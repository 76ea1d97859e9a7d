// Child processes: asyncio's subprocess transport and protocol
// (base_subprocess.py), and asyncio.subprocess.Process on its streams.
// Children start with posix_spawn, as CPython's subprocess starts them when
// it can (vfork semantics: the cost does not grow with the parent's memory,
// as libuv's fork-based uv_spawn does); each loop reaps its own children when
// SIGCHLD arrives, as libuv does for its own.
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
  /// Each `.pipe` a Unix socket pair, as libuv's and uvloop's are: bulk data
  /// moves about 1.5 times as fast, but the child cannot open /dev/stdin,
  /// /dev/stdout or /dev/stderr. false: pipes, as asyncio's.
  public var socketPairs = false
  /// The file run instead of the program, which stays the child's argv[0]
  /// (asyncio's executable=); searched in PATH as the program is.
  public var executable: String?
  /// The signal dispositions the child starts with.
  public var signals = ChildSignals.reset
  public init() {}
}

/// What becomes of the signals a child's parent ignores (a signal the
/// parent handles gets its default action at exec whatever this says).
public enum ChildSignals: Int32, Sendable {
  /// Every signal has its default action, as libuv starts its children.
  case reset = 0
  /// SIGPIPE and SIGXFSZ get their default action, the others the parent
  /// ignores stay ignored: asyncio's restore_signals=True (Popen's default).
  case restore = 1
  /// What the parent ignores stays ignored: restore_signals=False.
  case inherit = 2
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
  private var exitWaiters: [(Int32) -> Void] = []
  private var pending: [(SubprocessTransport) -> Void] = []
  private var drainScheduled = false
  /// Held until the child is reaped and connection_lost ran, whoever else
  /// holds the transport.
  private var keepAlive: Unmanaged<SubprocessTransport>?
  /// The C ABI's handle for this object (0: none yet).
  package var foreignHandle: UInt64 = 0

  private init(loop: Loop, pid: Int32) {
    self.loop = loop
    self.pid = pid
    LiveObjects.subprocesses.add(1, ordering: .relaxed)
    keepAlive = Unmanaged.passRetained(self)
    loop.ioOpened(self) { ($0 as! SubprocessTransport).loopClosing() }
  }

  deinit { LiveObjects.subprocesses.subtract(1, ordering: .relaxed) }

  /// Starts `program` (searched in PATH) with argv [program] + `arguments`. A failure
  /// to start (no such program, not executable, a bad cwd) throws its
  /// OSError here. connection_made runs soon, then `done`.
  package static func spawn(loop: Loop, program: String, arguments: [String], options: SpawnOptions,
                            protocol makeProtocol: any SubprocessProtocol,
                            done: @escaping (SubprocessTransport) -> Void) throws -> SubprocessTransport {
    try loop.checkUsable()
    try checkSpawn(program: program, arguments: arguments, options: options)
    var plan = try StdioPlan(options)
    defer { plan.closeChildEnds() }
    // Watching for SIGCHLD starts before the child does: one that exits at
    // once is still seen.
    let reaper: ChildReaper
    do {
      reaper = try ChildReaper.of(loop)
    } catch {
      plan.closeParentEnds()
      throw error
    }
    var pid: pid_t = 0
    let rc = withSpawn(program: program, arguments: arguments, options: options, plan: plan) { spec in
      aiosi_spawn(&spec, &pid)
    }
    guard rc == 0 else {
      plan.closeParentEnds()
      reaper.stopIfIdle()
      throw OSError(errno: -rc)
    }
    let transport = SubprocessTransport(loop: loop, pid: pid)
    reaper.add(pid, transport)
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
  /// The calls are kept here, in order, and run by one loop callback: a
  /// loop that closes drops its callbacks, and then loopClosing runs them.
  private func later(_ body: @escaping (SubprocessTransport) -> Void) {
    pending.append(body)
    guard !drainScheduled else { return }
    do {
      try loop.callSoon { [self] in runPending() }
      drainScheduled = true
    } catch {
      runPending()  // the loop is closing: nothing runs later
    }
  }

  private func runPending() {
    drainScheduled = false
    let calls = pending
    pending = []
    for call in calls { call(self) }
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

  /// The child was reaped with this wait status.
  fileprivate func reaped(_ status: Int32) {
    returncode = returnCode(status: status & 0x7f == 0 ? Int64((status >> 8) & 0xff) : 0, signal: status & 0x7f)
    guard connected else { return }
    later { $0.subprocessProtocol?.processExited() }
    tryFinish()
  }

  /// connection_lost once the child exited and every pipe closed; wait()
  /// returns then (asyncio 3.12 and later).
  private func tryFinish() {
    guard !finished, returncode != nil, connected, !pipeOpen.contains(true) else { return }
    finished = true
    later { $0.finish() }
  }

  /// asyncio's _call_connection_lost: the protocol's last call, then wait().
  private func finish() {
    guard !isDone else { return }
    isDone = true
    // Until now the loop's close finishes the transport (see loopClosing).
    loop.ioClosed(self)
    let lost = subprocessProtocol
    subprocessProtocol = nil
    lost?.connectionLost(nil)
    wakeWaiters()
    // Last: this may free the transport.
    let keep = keepAlive
    keepAlive = nil
    keep?.release()
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
    if Glibc.kill(pid, signum) != 0 { throw OSError(errno: errno) }
  }

  public func terminate() throws { try sendSignal(SIGTERM) }
  public func kill() throws { try sendSignal(SIGKILL) }

  /// asyncio's close: closes the pipes, and kills a child still running
  /// (it is reaped when it exits).
  public func close() {
    guard !isClosing else { return }
    isClosing = true
    for pipe in pipes { pipe?.close() }
    if returncode == nil { _ = Glibc.kill(pid, SIGKILL) }
  }

  /// The loop closes: a child still running is killed and reaped here, as
  /// nothing will watch for its exit any more.
  private func loopClosing() {
    for pipe in pipes { pipe?.abort() }
    defer {
      if !connected {
        // Never connected: nothing will finish it.
        let keep = keepAlive
        keepAlive = nil
        keep?.release()
      } else {
        // What was scheduled for the protocol (the closing loop dropped the
        // callback) runs now; the pipes aborted above finish it as they close.
        runPending()
      }
    }
    if returncode == nil {
      _ = Glibc.kill(pid, SIGKILL)
      var status: Int32 = 0
      var rc: pid_t
      repeat { rc = waitpid(pid, &status, 0) } while rc < 0 && errno == EINTR
      ChildReaper.forget(pid, on: loop)
      reaped(rc == pid ? status : SIGKILL)
    }
  }

  public var description: String {
    "<SubprocessTransport pid=\(pid) \(returncode.map { "returncode=\($0)" } ?? "running")>"
  }
}

/// Cancelling the request that made it (a future awaited for it was
/// cancelled) closes it, killing the child.
extension SubprocessTransport: CancellableRequest {
  package func cancel() { close() }
}

/// The protocol of one of a child's pipes (asyncio's
/// WriteSubprocessPipeProto and ReadSubprocessPipeProto).
private final class SubprocessPipe: StreamProtocol, KeptProtocol {
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

/// A loop's children and its SIGCHLD watcher, there while it has children.
/// Each child's pidfd is polled too: SIGCHLD reaches libuv's handler only
/// while nobody replaced it (Python's signal.signal does, behind libuv's
/// back), and a child must be reaped whatever the program does with its
/// signals. Where the kernel has no pidfd (before Linux 5.3), SIGCHLD alone.
final class ChildReaper {
  unowned let loop: Loop
  private(set) var children: [pid_t: SubprocessTransport] = [:]
  private var exitWatches: [pid_t: (poll: UnsafeMutablePointer<uv_poll_t>, pidfd: Int32)] = [:]
  private let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)

  private init(loop: Loop) throws {
    self.loop = loop
    var rc = uv_signal_init(loop.uv, handle)
    guard rc == 0 else {
      handle.deallocate()
      throw uvError(rc)
    }
    handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    rc = uv_signal_start(handle, childSignal, SIGCHLD)
    if rc != 0 {
      close()
      throw uvError(rc)
    }
  }

  /// The loop's reaper, started if it was not.
  static func of(_ loop: Loop) throws -> ChildReaper {
    if let reaper = loop.childReaper { return reaper }
    let reaper = try ChildReaper(loop: loop)
    loop.childReaper = reaper
    return reaper
  }

  static func forget(_ pid: pid_t, on loop: Loop) {
    guard let reaper = loop.childReaper else { return }
    reaper.children[pid] = nil
    reaper.stopWatching(pid)
    reaper.stopIfIdle()
  }

  /// A child started: reaped when it exits.
  func add(_ pid: pid_t, _ child: SubprocessTransport) {
    children[pid] = child
    let pidfd = aiosi_pidfd_open(pid)
    guard pidfd >= 0, let poll = startPoll(loop, owning: pidfd, for: self, childExited) else { return }
    exitWatches[pid] = (poll, pidfd)
  }

  private func stopWatching(_ pid: pid_t) {
    guard let watch = exitWatches.removeValue(forKey: pid) else { return }
    closePoll(watch.poll, thenClosing: watch.pidfd)
  }

  /// Reaps every child of this loop that has ended (one SIGCHLD may stand
  /// for several).
  fileprivate func reap() {
    for pid in Array(children.keys) {
      var status: Int32 = 0
      var rc: pid_t
      repeat { rc = waitpid(pid, &status, WNOHANG) } while rc < 0 && errno == EINTR
      guard rc == pid || (rc < 0 && errno == ECHILD), let child = children.removeValue(forKey: pid) else { continue }
      stopWatching(pid)
      // ECHILD: someone else reaped it; its status is lost.
      child.reaped(rc == pid ? status : 0)
    }
    stopIfIdle()
  }

  func stopIfIdle() {
    guard children.isEmpty, loop.childReaper === self else { return }
    loop.childReaper = nil
    close()
  }

  private func close() {
    handle.pointee.data = nil
    uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
  }
}

private func childSignal(_ handle: UnsafeMutablePointer<uv_signal_t>?, _ signum: Int32) {
  guard let data = handle?.pointee.data else { return }
  Unmanaged<ChildReaper>.fromOpaque(data).takeUnretainedValue().reap()
}

private func childExited(_ handle: UnsafeMutablePointer<uv_poll_t>?, _ status: Int32, _ events: Int32) {
  guard let data = handle?.pointee.data else { return }
  Unmanaged<ChildReaper>.fromOpaque(data).takeUnretainedValue().reap()
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
          // Pipes, as asyncio makes them (a socket pair only on AIX, for
          // stdin): the child may open /dev/stdin and the rest, which a
          // socket refuses (ENXIO). Socket pairs on request.
          let rc = options.socketPairs ? aiosi_socketpair(&ends) : aiosi_pipe(&ends)
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

/// A shell command as a program, its arguments and options: `/bin/sh -c
/// command`, or with `executable` that shell, as its argv[0] too (Popen's
/// shell=True with executable=).
package func shellInvocation(_ command: String, _ options: SpawnOptions) -> (String, [String], SpawnOptions) {
  var shellOptions = options
  shellOptions.executable = nil
  return (options.executable ?? "/bin/sh", ["-c", command], shellOptions)
}

/// What the spawn refuses, checked before anything is made for it.
private func checkSpawn(program: String, arguments: [String], options: SpawnOptions) throws {
  guard !program.isEmpty else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no program") }
  guard options.executable?.isEmpty != true else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "an empty executable")
  }
  guard options.passFds.allSatisfy({ $0 >= 0 }) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad value(s) in fds_to_keep")
  }
  guard Set(options.passFds).count <= 256 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "too many pass_fds") }
  let strings = [program, options.cwd ?? "", options.executable ?? ""] + arguments + (options.environment ?? [])
  guard !strings.contains(where: { $0.utf8.contains(0) }) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "embedded null byte")
  }
}

/// Runs `body` with the spawn's description, in C strings that live for
/// the call (checkSpawn has checked them).
private func withSpawn(program: String, arguments: [String], options: SpawnOptions, plan: StdioPlan,
                       _ body: (inout aiosi_spawn_t) -> Int32) -> Int32 {
  let keep = Array(Set(options.passFds)).sorted()
  let environment = options.environment.map { childEnvironment($0, extending: options.extendEnvironment) } ?? []
  let strings = [program] + arguments + environment + [options.executable ?? "", options.cwd ?? ""]
  let copies = strings.map { strdup($0) }
  defer { for copy in copies { free(copy) } }
  let argumentEnd = 1 + arguments.count
  var argv: [UnsafeMutablePointer<CChar>?] = Array(copies[0..<argumentEnd]) + [nil]
  var envp: [UnsafeMutablePointer<CChar>?] = Array(copies[argumentEnd..<(argumentEnd + environment.count)]) + [nil]
  return argv.withUnsafeMutableBufferPointer { argvBuffer in
    envp.withUnsafeMutableBufferPointer { envpBuffer in
      keep.withUnsafeBufferPointer { keepBuffer in
        var spec = aiosi_spawn_t()
        spec.file = UnsafePointer(options.executable == nil ? copies[0] : copies[copies.count - 2])
        spec.argv = UnsafePointer(argvBuffer.baseAddress)
        spec.envp = options.environment == nil ? nil : UnsafePointer(envpBuffer.baseAddress)
        spec.cwd = options.cwd == nil ? nil : UnsafePointer(copies[copies.count - 1])
        spec.stdio = (plan.childFds[0], plan.childFds[1], plan.childFds[2])
        spec.keep = keepBuffer.baseAddress
        spec.keep_count = keep.count
        spec.new_session = options.startNewSession ? 1 : 0
        spec.process_group = options.processGroup ?? -1
        spec.signals = options.signals.rawValue
        return body(&spec)
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
    try await awaitRequest({ done in
      try spawnProcess(program: program, arguments: arguments, options: options) { done(.success($0)) }
    }, discard: { $0.transport.close() })
  }

  /// asyncio's create_subprocess_shell: `/bin/sh -c command` (or the shell
  /// options.executable names).
  public func createSubprocessShell(_ command: String, options: SpawnOptions = SpawnOptions()) async throws -> AioProcess {
    let (shell, arguments, shellOptions) = shellInvocation(command, options)
    return try await createSubprocessExec(shell, arguments, options: shellOptions)
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
    try await awaitRequest({
      try Connector.pipe(loop: self, fd: fd, writing: writing, makeProtocol: { pipeProtocol }, done: $0)
    }, discard: { $0.abort() })
  }
}
