import AioSwift
import Glibc
import XCTest

private func text(_ bytes: [UInt8]?) -> String { String(decoding: bytes ?? [], as: UTF8.self) }

private func piped(stdin: Bool = false, stdout: Bool = true, stderr: ChildStream = .inherit) -> SpawnOptions {
  var options = SpawnOptions()
  if stdin { options.stdin = .pipe }
  if stdout { options.stdout = .pipe }
  options.stderr = stderr
  return options
}

/// No child of this process is left unreaped.
private func assertNoZombies(file: StaticString = #filePath, line: UInt = #line) {
  var status: Int32 = 0
  let rc = waitpid(-1, &status, WNOHANG)
  XCTAssertTrue(rc == -1 && errno == ECHILD || rc == 0, "a child was left to reap: \(rc)", file: file, line: line)
  if rc > 0 { XCTFail("zombie \(rc)", file: file, line: line) }
}

final class SubprocessTests: LeakCheckedTestCase {
  override func tearDown() {
    assertNoZombies()
    super.tearDown()
  }

  func testExecOutputAndReturnCode() throws {
    try runMain {
      let loop = try getRunningLoop()
      let process = try await loop.createSubprocessExec("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"],
                                                        options: piped(stderr: .pipe))
      XCTAssertGreaterThan(process.pid, 0)
      let (out, err) = try await process.communicate()
      XCTAssertEqual(text(out), "out\n")
      XCTAssertEqual(text(err), "err\n")
      XCTAssertEqual(process.returncode, 3)
      // wait after the end returns at once, and a signal then is asyncio's ProcessLookupError.
      let again = try await process.wait()
      XCTAssertEqual(again, 3)
      XCTAssertThrowsError(try process.kill()) { XCTAssertEqual(($0 as? OSError)?.errno, ESRCH) }
    }
  }

  func testPipesOrSocketPairs() throws {
    try runMain {
      let loop = try getRunningLoop()
      let script = "for f in /dev/stdin /dev/stdout; do test -p $f && printf p; test -S $f && printf s; done;"
        + " cat /dev/stdin > /dev/stdout 2>/dev/null || printf ' refused'"
      var options = piped(stdin: true)
      let pipes = try await loop.createSubprocessShell(script, options: options)
      let (out, _) = try await pipes.communicate(Array("in".utf8))
      XCTAssertEqual(text(out), "ppin")
      options.socketPairs = true
      let sockets = try await loop.createSubprocessShell(script, options: options)
      let (refused, _) = try await sockets.communicate(Array("in".utf8))
      XCTAssertEqual(text(refused), "ss refused")
    }
  }

  func testExecutableRunsAnotherFileAndSignalsStayIgnoredOnRequest() throws {
    try runMain {
      let loop = try getRunningLoop()
      var options = piped()
      options.executable = "/bin/sh"
      let named = try await loop.createSubprocessExec("named-by-argv0", ["-c", "printf %s \"$0\""],
                                                      options: options)
      let (argv0, _) = try await named.communicate()
      XCTAssertEqual(text(argv0), "named-by-argv0")
      // The parent ignores SIGHUP: reset gives the child the default, inherit keeps it ignored.
      let previous = signal(SIGHUP, SIG_IGN)
      defer { signal(SIGHUP, previous) }
      var ignored: [ChildSignals: Bool] = [:]
      for signals in [ChildSignals.reset, .restore, .inherit] {
        var options = piped()
        options.signals = signals
        let child = try await loop.createSubprocessShell(
          "sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status", options: options)
        let (out, _) = try await child.communicate()
        let mask = UInt64(text(out).filter { !$0.isWhitespace }, radix: 16) ?? 0
        ignored[signals] = (mask >> UInt64(SIGHUP - 1)) & 1 == 1
      }
      XCTAssertEqual(ignored, [.reset: false, .restore: true, .inherit: true])
    }
  }

  func testShellAndStderrToStdout() throws {
    try runMain {
      let process = try await getRunningLoop().createSubprocessShell("echo a; echo b >&2",
                                                                     options: piped(stderr: .stdout))
      let (out, err) = try await process.communicate()
      XCTAssertEqual(text(out), "a\nb\n")
      XCTAssertNil(err)
      XCTAssertEqual(process.returncode, 0)
    }
  }

  func testLargeInputAndOutputAtOnce() throws {
    try runMain {
      let size = 10 * 1024 * 1024
      var input = [UInt8](repeating: 0, count: size)
      for index in stride(from: 0, to: size, by: 4096) { input[index] = UInt8(truncatingIfNeeded: index / 4096) }
      let process = try await getRunningLoop().createSubprocessExec("cat", options: piped(stdin: true))
      let (out, _) = try await process.communicate(input)
      XCTAssertEqual(out?.count, size)
      XCTAssertTrue(out == input)
      XCTAssertEqual(process.returncode, 0)
    }
  }

  func testKillGivesNegativeSignalAndSeveralWaiters() throws {
    try runMain {
      let loop = try getRunningLoop()
      let process = try await loop.createSubprocessExec("sleep", ["30"])
      let waiters = try (0..<3).map { _ in try loop.createTask { try await process.wait() } }
      try await sleep(0.05)
      try process.kill()
      for waiter in waiters {
        let code = try await waiter.value
        XCTAssertEqual(code, -SIGKILL)
      }
      XCTAssertEqual(process.returncode, -SIGKILL)
    }
  }

  func testTimeoutKillsAndKeepsPartialOutput() throws {
    try runMain {
      let loop = try getRunningLoop()
      let process = try await loop.createSubprocessShell("echo started; exec sleep 30", options: piped())
      var output: [UInt8] = []
      do {
        try await timeout(1.0) { _ in  // the shell's start under a loaded machine fits in it
          while true {
            let chunk = try await process.stdout!.read(100)
            if chunk.isEmpty { break }
            output += chunk
          }
        }
        XCTFail("expected a timeout")
      } catch is TimeoutError {
        try process.kill()
      }
      let code = try await process.wait()
      XCTAssertEqual(code, -SIGKILL)
      XCTAssertEqual(text(output), "started\n")
    }
  }

  func testSpawnFailures() throws {
    try runMain {
      let loop = try getRunningLoop()
      let plainFile = "/tmp/aio-not-executable-\(getpid())"
      let created = open(plainFile, O_CREAT | O_WRONLY, 0o644)
      close(created)
      defer { unlink(plainFile) }
      for (program, expected) in [("/no/such/program", ENOENT), (plainFile, EACCES)] {
        do {
          _ = try await loop.createSubprocessExec(program)
          XCTFail("expected an error for \(program)")
        } catch let error as OSError {
          XCTAssertEqual(error.errno, expected, program)
        }
      }
      var options = SpawnOptions()
      options.cwd = "/no/such/directory"
      do {
        _ = try await loop.createSubprocessExec("true", options: options)
        XCTFail("expected an error for the cwd")
      } catch let error as OSError {
        XCTAssertEqual(error.errno, ENOENT)
      }
    }
  }

  func testEnvironmentCwdAndDevNull() throws {
    try runMain {
      let loop = try getRunningLoop()
      var options = piped()
      options.environment = ["AIO_TEST_VALUE=given"]
      options.cwd = "/tmp"
      options.stdin = .devNull
      let replaced = try await loop.createSubprocessExec("/bin/sh", ["-c", "echo $AIO_TEST_VALUE:$HOME:$(pwd); cat"],
                                                         options: options)
      let (out, _) = try await replaced.communicate()
      XCTAssertEqual(text(out), "given::/tmp\n")

      options.extendEnvironment = true
      options.environment = ["AIO_TEST_VALUE=extended"]
      let extended = try await loop.createSubprocessShell("echo $AIO_TEST_VALUE; test -n \"$PATH\" && echo path",
                                                          options: options)
      let (both, _) = try await extended.communicate()
      XCTAssertEqual(text(both), "extended\npath\n")
    }
  }

  func testPassFdsKeepsOnlyThoseListed() throws {
    var kept: [Int32] = [-1, -1], dropped: [Int32] = [-1, -1]
    XCTAssertEqual(pipe(&kept), 0)
    XCTAssertEqual(pipe(&dropped), 0)  // not close-on-exec: only close_fds keeps it from the child
    defer { for fd in kept + dropped { close(fd) } }
    try runMain {
      var options = piped()
      options.passFds = [kept[1]]
      let script = "test -e /proc/self/fd/\(kept[1]) && echo kept; test -e /proc/self/fd/\(dropped[1]) || echo closed"
      let process = try await getRunningLoop().createSubprocessShell(script, options: options)
      let (out, _) = try await process.communicate()
      XCTAssertEqual(text(out), "kept\nclosed\n")
    }
  }

  func testProcessGroupAndNewSession() throws {
    try runMain {
      let loop = try getRunningLoop()
      var options = piped()
      options.processGroup = 0
      let grouped = try await loop.createSubprocessShell("ps -o pgid= -p $$", options: options)
      let (out, _) = try await grouped.communicate()
      XCTAssertEqual(text(out).trimmingCharacters(in: .whitespacesAndNewlines), String(grouped.pid))

      options = piped()
      options.startNewSession = true
      let session = try await loop.createSubprocessShell("ps -o sid= -p $$", options: options)
      let (sid, _) = try await session.communicate()
      XCTAssertEqual(text(sid).trimmingCharacters(in: .whitespacesAndNewlines), String(session.pid))
    }
  }

  func testLoopClosedWithChildRunningLeavesNoZombie() throws {
    let loop = try Loop()
    var pid: Int32 = 0
    try loop.runUntilComplete(try loop.createTask {
      let process = try await loop.createSubprocessExec("sleep", ["30"], options: piped())
      pid = process.pid
    })
    try loop.close()
    XCTAssertGreaterThan(pid, 0)
    XCTAssertEqual(kill(pid, 0), -1, "the child was killed")
  }

  func testReadAndWritePipes() throws {
    try runMain {
      let loop = try getRunningLoop()
      var ends: [Int32] = [-1, -1]
      XCTAssertEqual(pipe(&ends), 0)
      let reader = try await loop.openReadPipe(fd: ends[0])
      let writer = try await loop.openWritePipe(fd: ends[1])
      try writer.write(Array("line one\nline two\n".utf8))
      try await writer.drain()
      let first = try await reader.readLine()
      XCTAssertEqual(text(first), "line one\n")
      writer.close()
      let rest = try await reader.read()
      XCTAssertEqual(text(rest), "line two\n")
      XCTAssertTrue(reader.atEOF)

      // A regular file is refused, and the caller keeps it.
      let file = open("/etc/hostname", O_RDONLY)
      defer { close(file) }
      do {
        _ = try await loop.openReadPipe(fd: file)
        XCTFail("expected a refusal")
      } catch let error as RuntimeError {
        XCTAssertEqual(error.message, "Pipe transport is for pipes/sockets only.")
      }
      XCTAssertEqual(fcntl(file, F_GETFD), 0)
    }
  }

  func testWritePipeSeesItsReaderGo() throws {
    final class Watch: StreamProtocol {
      let lost: Future<String>
      init(_ loop: Loop) { lost = loop.createFuture() }
      func connectionLost(_ error: (any Error)?) { try? lost.setResult(error.map { "\($0)" } ?? "none") }
    }
    try runMain {
      let loop = try getRunningLoop()
      var ends: [Int32] = [-1, -1]
      XCTAssertEqual(pipe(&ends), 0)
      let watch = Watch(loop)
      let transport = try await loop.connectPipe(fd: ends[1], writing: true, watch)
      XCTAssertFalse(transport.isReading)
      close(ends[0])
      let how = try await waitFor(watch.lost, timeout: 5)
      XCTAssertEqual(how, "none")
    }
  }

  func testSignalHandlers() throws {
    try runMain {
      let loop = try getRunningLoop()
      let seen = loop.createFuture(of: Int.self)
      var count = 0
      try loop.addSignalHandler(SIGUSR1) { count += 1; if count == 2 { try? seen.setResult(count) } }
      raise(SIGUSR1)
      try await sleep(0.01)
      XCTAssertEqual(count, 1, "the callback ran on the loop")
      // From another process.
      let sender = try await loop.createSubprocessShell("kill -USR1 \(getpid())")
      _ = try await sender.wait()
      let total = try await waitFor(seen, timeout: 5)
      XCTAssertEqual(total, 2)
      XCTAssertTrue(try loop.removeSignalHandler(SIGUSR1))
      XCTAssertFalse(try loop.removeSignalHandler(SIGUSR1))
      XCTAssertThrowsError(try loop.addSignalHandler(SIGKILL) {})
      XCTAssertThrowsError(try loop.addSignalHandler(0) {})
      XCTAssertThrowsError(try loop.addSignalHandler(65) {})
      // The default disposition is back.
      var action = sigaction()
      sigaction(SIGUSR1, nil, &action)
      XCTAssertNil(action.__sigaction_handler.sa_handler)
    }
  }

  func testManyConcurrentSpawns() throws {
    try runMain {
      let loop = try getRunningLoop()
      let tasks = try (0..<200).map { index in
        try loop.createTask { () -> Int32 in
          let process = try await loop.createSubprocessShell("exit \(index % 7)")
          return try await process.wait()
        }
      }
      for (index, task) in tasks.enumerated() {
        let code = try await task.value
        XCTAssertEqual(code, Int32(index % 7))
      }
    }
  }
}
