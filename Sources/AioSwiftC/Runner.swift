// asyncio.run and asyncio.Runner for tasks driven by C step functions.
import AioSwift
import CAioSwift

/// Runs a main C task on `runner` and hands it out; returns its status.
private func runMain(_ runner: Runner, _ step: aios_step_fn?, _ arg: UnsafeMutableRawPointer?,
                     _ options: UnsafePointer<aios_task_options_t>?,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) throws -> Int32 {
  guard let step else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
  let options = try taskOptions(options)
  let task = try runner.runTask { loop in try createStepTask(loop, step, arg, options, forCaller: false).0 }
  try give(task, .task, out)
  return status { try task.checkResult() }
}

@_cdecl("aios_run")
public func aios_run(_ step: aios_step_fn?, _ arg: UnsafeMutableRawPointer?,
                     _ options: UnsafePointer<aios_task_options_t>?,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  let runner = Runner()
  do {
    let result = try runMain(runner, step, arg, options, out)
    try runner.close()
    return result
  } catch {
    try? runner.close()
    return statusCode(of: error)
  }
}

@_cdecl("aios_runner_new")
public func aios_runner_new(_ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(Runner(), .runner, out)
  }
}

@_cdecl("aios_runner_run")
public func aios_runner_run(_ runner: OpaquePointer?, _ step: aios_step_fn?, _ arg: UnsafeMutableRawPointer?,
                            _ options: UnsafePointer<aios_task_options_t>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  do {
    return try runMain(try ownRunner(runner), step, arg, options, out)
  } catch {
    return statusCode(of: error)
  }
}

@_cdecl("aios_runner_get_loop")
public func aios_runner_get_loop(_ runner: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
  status {
    guard out != nil else { throw RuntimeError(code: AIOS_EINVAL.rawValue) }
    try give(try ownRunner(runner).loop, .loop, out)
  }
}

@_cdecl("aios_runner_close")
public func aios_runner_close(_ runner: OpaquePointer?) -> Int32 { status { try ownRunner(runner).close() } }

@_cdecl("aios_runner_ref")
public func aios_runner_ref(_ runner: OpaquePointer?) -> Int32 { refObject(runner, .runner) }

@_cdecl("aios_runner_unref")
public func aios_runner_unref(_ runner: OpaquePointer?) -> Int32 { unrefObject(runner, .runner) }
