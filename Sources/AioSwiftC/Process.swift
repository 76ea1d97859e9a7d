// Signal handlers, subprocess transports and protocols, and
// asyncio.subprocess.Process (create_subprocess_exec and _shell).
import AioSwift
import CAioSwift
import Glibc

// MARK: Signals

@_cdecl("aios_loop_add_signal_handler")
public func aios_loop_add_signal_handler(_ loop: OpaquePointer?, _ signum: Int32, _ callback: aios_callback_fn?,
                                         _ arg: UnsafeMutableRawPointer?,
                                         _ destructor: aios_destructor_fn?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard let callback else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no callback") }
    let argument = OwnedArgument(arg, destructor)
    do {
      try loop.addSignalHandler(signum) { [argument] in callback(argument.value) }
    } catch {
      argument.disown()
      throw error
    }
  }
}

@_cdecl("aios_loop_remove_signal_handler")
public func aios_loop_remove_signal_handler(_ loop: OpaquePointer?, _ signum: Int32) -> Int32 {
  count { try ownLoop(loop).removeSignalHandler(signum) ? 1 : 0 }
}

// MARK: Options

/// A child stream's mode from C.
private func childStream(_ mode: Int32, _ fd: Int32, isStderr: Bool) throws -> ChildStream {
  switch UInt32(bitPattern: mode) {
  case AIOS_CHILD_INHERIT.rawValue: return .inherit
  case AIOS_CHILD_PIPE.rawValue: return .pipe
  case AIOS_CHILD_DEVNULL.rawValue: return .devNull
  case AIOS_CHILD_STDOUT.rawValue where isStderr: return .stdout
  case AIOS_CHILD_FD.rawValue:
    guard fd >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad file descriptor \(fd)") }
    return .descriptor(fd)
  default: throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad stream mode \(mode)")
  }
}

/// The strings of a NULL-terminated C list.
private func stringList(_ list: UnsafePointer<UnsafePointer<CChar>?>?) throws -> [String] {
  guard let list else { return [] }
  var result: [String] = []
  var index = 0
  while let item = list[index] {
    guard index < 1 << 20 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "list too long") }
    result.append(String(cString: item))
    index += 1
  }
  return result
}

private func spawnOptions(_ options: UnsafePointer<aios_spawn_options_t>?) throws -> SpawnOptions {
  var result = SpawnOptions()
  guard let options else { return result }
  // A caller built before socket_pairs was added hands the struct up to `limit`.
  let oldSize = MemoryLayout<aios_spawn_options_t>.offset(of: \aios_spawn_options_t.limit)! + MemoryLayout<Int>.size
  let size = options.pointee.size
  guard size >= oldSize else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "options size too small") }
  var given = aios_spawn_options_t()
  withUnsafeMutableBytes(of: &given) {
    $0.copyMemory(from: UnsafeRawBufferPointer(start: options, count: min(size, $0.count)))
  }
  result.stdin = try childStream(given.stdin_mode, given.stdin_fd, isStderr: false)
  result.stdout = try childStream(given.stdout_mode, given.stdout_fd, isStderr: false)
  result.stderr = try childStream(given.stderr_mode, given.stderr_fd, isStderr: true)
  result.cwd = string(given.cwd)
  if given.env != nil { result.environment = try stringList(given.env) }
  result.extendEnvironment = given.env_extend != 0
  result.startNewSession = given.start_new_session != 0
  result.socketPairs = given.socket_pairs != 0
  if given.use_process_group != 0 {
    guard given.process_group >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad process group") }
    result.processGroup = given.process_group
  }
  let count = given.pass_fds_count
  // A size_t of 2^63 or more arrives negative.
  guard count >= 0, count <= 256, count == 0 || given.pass_fds != nil else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "pass_fds: at most 256 descriptors")
  }
  result.passFds = (0..<count).map { given.pass_fds[$0] }
  result.limit = try limit(given.limit)
  if given.executable != nil { result.executable = String(cString: given.executable) }
  guard let signals = ChildSignals(rawValue: given.signals) else {
    throw RuntimeError(code: AIOS_EINVAL.rawValue, "bad signals \(given.signals)")
  }
  result.signals = signals
  return result
}

// MARK: Subprocess transports

extension SubprocessTransport: ForeignObject {
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(loop).toOpaque() }
}

/// A C subprocess protocol table as the core's protocol. It holds one C
/// reference to its subprocess from connection_made to connection_lost.
private final class CSubprocessProtocol: SubprocessProtocol {
  let table: aios_subprocess_protocol_t
  let argument: OwnedArgument
  private var reference = CallbackReference()

  init(_ table: aios_subprocess_protocol_t) {
    self.table = table
    argument = OwnedArgument(table.arg, table.destroy)
  }

  deinit { reference.drop() }

  static func make(_ table: UnsafePointer<aios_subprocess_protocol_t>?) throws -> CSubprocessProtocol {
    CSubprocessProtocol(try wholeTable(table))
  }

  private var subprocess: OpaquePointer? { reference.object }

  func connectionMade(_ transport: SubprocessTransport) {
    reference.take(transport, .subprocess)
    table.connection_made?(subprocess, table.arg)
  }

  func pipeDataReceived(fd: Int32, _ data: UnsafeRawBufferPointer) {
    table.pipe_data_received?(subprocess, fd, data.baseAddress, data.count, table.arg)
  }

  func pipeConnectionLost(fd: Int32, _ error: (any Error)?) {
    guard let lost = table.pipe_connection_lost else { return }
    withLentError(error) { lost(subprocess, fd, $0, table.arg) }
  }

  func processExited() { table.process_exited?(subprocess, table.arg) }

  func connectionLost(_ error: (any Error)?) {
    if let lost = table.connection_lost { withLentError(error) { lost(subprocess, $0, table.arg) } }
    reference.drop()
  }

  func pauseWriting() { table.pause_writing?(subprocess, table.arg) }
  func resumeWriting() { table.resume_writing?(subprocess, table.arg) }
}

/// What a spawn runs: its program, arguments and options.
private typealias Invocation = (program: String, arguments: [String], options: SpawnOptions)

/// A shell command's invocation.
private func shellCommand(_ command: UnsafePointer<CChar>?, _ options: SpawnOptions) throws -> Invocation {
  guard let command else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no command") }
  return shellInvocation(String(cString: command), options)
}

/// A program's invocation.
private func execCommand(_ file: UnsafePointer<CChar>?, _ args: UnsafePointer<UnsafePointer<CChar>?>?,
                         _ options: SpawnOptions) throws -> Invocation {
  (try program(file), try stringList(args), options)
}

private func program(_ program: UnsafePointer<CChar>?) throws -> String {
  guard let program, program.pointee != 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue, "no program") }
  return String(cString: program)
}

private func subprocess(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_subprocess_protocol_t>?,
                        _ command: (SpawnOptions) throws -> Invocation,
                        _ options: UnsafePointer<aios_spawn_options_t>?,
                        _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let (program, arguments, options) = try command(try spawnOptions(options))
    let made = try CSubprocessProtocol.make(table)
    do {
      try requestFuture(loop, out, { done in
        try SubprocessTransport.spawn(loop: loop, program: program, arguments: arguments, options: options,
                                      protocol: made) { done(.success($0)) }
      }, deliver: { setHandleResult($0, $1, .subprocess) }, discard: { $0.close() })
    } catch {
      made.argument.disown()
      throw error
    }
  }
}

@_cdecl("aios_subprocess_exec")
public func aios_subprocess_exec(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_subprocess_protocol_t>?,
                                 _ file: UnsafePointer<CChar>?, _ args: UnsafePointer<UnsafePointer<CChar>?>?,
                                 _ options: UnsafePointer<aios_spawn_options_t>?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  subprocess(loop, table, { try execCommand(file, args, $0) }, options, out)
}

@_cdecl("aios_subprocess_shell")
public func aios_subprocess_shell(_ loop: OpaquePointer?, _ table: UnsafePointer<aios_subprocess_protocol_t>?,
                                  _ command: UnsafePointer<CChar>?, _ options: UnsafePointer<aios_spawn_options_t>?,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  subprocess(loop, table, { try shellCommand(command, $0) }, options, out)
}

@inline(__always)
private func withSubprocess<R>(_ p: OpaquePointer?, _ body: (SubprocessTransport) throws -> R) throws -> R {
  try withObject(p, .subprocess, as: SubprocessTransport.self, body)
}

@_cdecl("aios_subprocess_get_pid")
public func aios_subprocess_get_pid(_ subprocess: OpaquePointer?) -> Int32 {
  count { try withSubprocess(subprocess) { Int($0.pid) } }
}

/// 1 and the code once exited, 0 while running.
private func returncode(_ transport: SubprocessTransport, _ code: UnsafeMutablePointer<Int32>?) throws -> Int {
  guard let code else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  guard let value = transport.returncode else { return 0 }
  code.pointee = value
  return 1
}

@_cdecl("aios_subprocess_get_returncode")
public func aios_subprocess_get_returncode(_ subprocess: OpaquePointer?, _ code: UnsafeMutablePointer<Int32>?) -> Int32 {
  count { try withSubprocess(subprocess) { try returncode($0, code) } }
}

@_cdecl("aios_subprocess_get_pipe_transport")
public func aios_subprocess_get_pipe_transport(_ subprocess: OpaquePointer?, _ fd: Int32,
                                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withSubprocess(subprocess) { transport in
      guard let pipe = transport.pipeTransport(fd: fd) else {
        throw RuntimeError(code: AIOS_EINVAL.rawValue, "no pipe for fd \(fd)")
      }
      try give(pipe, .transport, out)
    }
  }
}

@_cdecl("aios_subprocess_send_signal")
public func aios_subprocess_send_signal(_ subprocess: OpaquePointer?, _ signum: Int32) -> Int32 {
  status { try withSubprocess(subprocess) { try $0.sendSignal(signum) } }
}

@_cdecl("aios_subprocess_terminate")
public func aios_subprocess_terminate(_ subprocess: OpaquePointer?) -> Int32 {
  status { try withSubprocess(subprocess) { try $0.terminate() } }
}

@_cdecl("aios_subprocess_kill")
public func aios_subprocess_kill(_ subprocess: OpaquePointer?) -> Int32 {
  status { try withSubprocess(subprocess) { try $0.kill() } }
}

@_cdecl("aios_subprocess_close")
public func aios_subprocess_close(_ subprocess: OpaquePointer?) -> Int32 {
  status { try withSubprocess(subprocess) { $0.close() } }
}

@_cdecl("aios_subprocess_is_closing")
public func aios_subprocess_is_closing(_ subprocess: OpaquePointer?) -> Int32 {
  count { try withSubprocess(subprocess) { $0.isClosing ? 1 : 0 } }
}

@_cdecl("aios_subprocess_get_loop")
public func aios_subprocess_get_loop(_ subprocess: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try withSubprocess(subprocess) { $0.loop }, .loop, out)
  }
}

@_cdecl("aios_subprocess_ref")
public func aios_subprocess_ref(_ subprocess: OpaquePointer?) -> Int32 { refObject(subprocess, .subprocess) }

@_cdecl("aios_subprocess_unref")
public func aios_subprocess_unref(_ subprocess: OpaquePointer?) -> Int32 { unrefObject(subprocess, .subprocess) }

// MARK: Processes

/// A Process as C holds it, with one stream object per pipe.
final class CProcess: ForeignObject {
  let process: AioProcess
  var foreignHandle: UInt64 = 0
  var foreignLoop: UnsafeMutableRawPointer? { Unmanaged.passUnretained(process.loop).toOpaque() }
  private var streams: [Int32: CStream] = [:]

  init(_ process: AioProcess) { self.process = process }

  func stream(fd: Int32) throws -> CStream {
    if let stream = streams[fd] { return stream }
    let made: CStream
    switch fd {
    case 0 where process.stdin != nil:
      // The stdin stream writes; reading it gives EOF.
      let reader = try StreamReader(loop: process.loop)
      reader.feedEOF()
      made = CStream(reader: reader, writer: process.stdin)
    case 1 where process.stdout != nil: made = CStream(reader: process.stdout!, writer: nil)
    case 2 where process.stderr != nil: made = CStream(reader: process.stderr!, writer: nil)
    default: throw RuntimeError(code: AIOS_EINVAL.rawValue, "fd \(fd) is not a pipe")
    }
    streams[fd] = made
    return made
  }
}

private func process(_ loop: OpaquePointer?, _ command: (SpawnOptions) throws -> Invocation,
                     _ options: UnsafePointer<aios_spawn_options_t>?,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    let loop = try ownLoop(loop)
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    let (program, arguments, options) = try command(try spawnOptions(options))
    try requestFuture(loop, out, { done in
      try loop.spawnProcess(program: program, arguments: arguments, options: options) { done(.success($0)) }
    }, deliver: { setHandleResult($0, CProcess($1), .process) }, discard: { $0.transport.close() })
  }
}


@_cdecl("aios_create_subprocess_exec")
public func aios_create_subprocess_exec(_ loop: OpaquePointer?, _ file: UnsafePointer<CChar>?,
                                        _ args: UnsafePointer<UnsafePointer<CChar>?>?,
                                        _ options: UnsafePointer<aios_spawn_options_t>?,
                                        _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  process(loop, { try execCommand(file, args, $0) }, options, out)
}

@_cdecl("aios_create_subprocess_shell")
public func aios_create_subprocess_shell(_ loop: OpaquePointer?, _ command: UnsafePointer<CChar>?,
                                         _ options: UnsafePointer<aios_spawn_options_t>?,
                                         _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  process(loop, { try shellCommand(command, $0) }, options, out)
}

@inline(__always)
private func withProcess<R>(_ p: OpaquePointer?, _ body: (CProcess) throws -> R) throws -> R {
  try withObject(p, .process, as: CProcess.self, body)
}

@_cdecl("aios_process_get_subprocess")
public func aios_process_get_subprocess(_ process: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProcess(process) { try give($0.process.transport, .subprocess, out) }
  }
}

@_cdecl("aios_process_get_stream")
public func aios_process_get_stream(_ process: OpaquePointer?, _ fd: Int32,
                                    _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProcess(process) { try give(try $0.stream(fd: fd), .stream, out) }
  }
}

@_cdecl("aios_process_wait")
public func aios_process_wait(_ process: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProcess(process) { process in
      let loop = process.process.loop
      try loop.checkUsable()
      let future = RawFuture(loop: loop)
      process.process.transport.whenFinished { code in
        guard !future.isDone else { return }
        try? future.setCResult(UnsafeMutableRawPointer(bitPattern: Int(code)), destructor: nil)
      }
      try give(future, .future, out)
    }
  }
}

@_cdecl("aios_output_free")
public func aios_output_free(_ output: UnsafeMutableRawPointer?) {
  guard let output = output?.assumingMemoryBound(to: aios_output_t.self) else { return }
  aios_bytes_free(output.pointee.out.map { UnsafeMutableRawPointer($0) })
  aios_bytes_free(output.pointee.err.map { UnsafeMutableRawPointer($0) })
  output.deallocate()
}

private func outputBytes(_ bytes: [UInt8]?) -> UnsafeMutablePointer<aios_bytes_t>? {
  guard let bytes else { return nil }
  return bytes.withUnsafeBytes { makeBytes($0) }?.assumingMemoryBound(to: aios_bytes_t.self)
}

@_cdecl("aios_process_communicate")
public func aios_process_communicate(_ process: OpaquePointer?, _ input: UnsafeRawPointer?, _ length: Int,
                                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil, length == 0 || input != nil, length >= 0 else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try withProcess(process) { held in
      let process = held.process
      let loop = process.loop
      try loop.checkUsable()
      let bytes = input.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: length)) }
      let future = RawFuture(loop: loop)
      let task = try loop.createTask { try await process.communicate(bytes) }
      task.addDoneCallback { done in
        guard !future.isDone else { return }
        if done.isCancelled { _ = future.cancel(); return }
        do {
          let (stdout, stderr) = try task.result()
          let output = UnsafeMutablePointer<aios_output_t>.allocate(capacity: 1)
          output.initialize(to: aios_output_t(out: outputBytes(stdout), err: outputBytes(stderr)))
          try? future.setCResult(UnsafeMutableRawPointer(output), destructor: aios_output_free)
        } catch {
          try? future.setError(error)
        }
      }
      future.addDoneCallback { if $0.isCancelled { _ = task.cancel() } }
      do {
        try give(future, .future, out)
      } catch {
        _ = task.cancel()
        throw error
      }
    }
  }
}

@_cdecl("aios_process_ref")
public func aios_process_ref(_ process: OpaquePointer?) -> Int32 { refObject(process, .process) }

@_cdecl("aios_process_unref")
public func aios_process_unref(_ process: OpaquePointer?) -> Int32 { unrefObject(process, .process) }
