// aio-capture SECONDS COMMAND: runs COMMAND with /bin/sh, prints what it
// writes, and kills it if it runs longer than SECONDS (its output so far is
// kept).
import AioSwift

let arguments = CommandLine.arguments
let seconds = arguments.count > 1 ? Double(arguments[1]) ?? 1 : 1
let command = arguments.count > 2 ? arguments[2] : "echo hello; sleep 5"

try run { @Sendable () async throws in
  var options = SpawnOptions()
  options.stdout = .pipe
  let process = try await getRunningLoop().createSubprocessShell(command, options: options)
  var output: [UInt8] = []
  var killed = false
  do {
    try await timeout(seconds) {
      for try await chunk in process.stdout!.chunks() { output += chunk }
    }
  } catch is TimeoutError {
    try process.kill()
    killed = true
  }
  let code = try await process.wait()
  print("aio-capture: \(String(decoding: output, as: UTF8.self))", terminator: output.last == 10 ? "" : "\n")
  print("aio-capture: \(killed ? "killed after \(seconds) s" : "ended"), returncode \(code)")
}
