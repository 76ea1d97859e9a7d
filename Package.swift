// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "libaio-swift",
  products: [
    .library(name: "AioSwift", targets: ["AioSwift"]),
    // libaio-swift.so: the C ABI. `make` links it with the Swift standard
    // library inside and exports only aios_* (Sources/AioSwiftC/exports.map).
    .library(name: "aio-swift", type: .dynamic, targets: ["AioSwiftC"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
  ],
  targets: [
    .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
    // The public header, imported by Swift so both sides share one set of
    // types and constants.
    .target(name: "CAioSwift"),
    .target(
      name: "AioSwift",
      dependencies: [
        "CLibUV", "CAioSwift",
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "HeapModule", package: "swift-collections"),
      ],
      // Async functions run on their caller's executor (the loop's) rather
      // than hopping to the generic one at every call: each hop costs a
      // task switch and a look at the task's executor preference under a lock.
      swiftSettings: [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]),
    .target(name: "AioSwiftC", dependencies: ["AioSwift", "CAioSwift", "CLibUV"], exclude: ["exports.map"]),
    .testTarget(name: "AioSwiftTests", dependencies: ["AioSwift"]),
    .executableTarget(name: "aio-bench", dependencies: ["AioSwift"], path: "bench/swift"),
    .executableTarget(name: "aio-demo", dependencies: ["AioSwift"], path: "examples/swift/demo"),
    .executableTarget(name: "aio-echo-server", dependencies: ["AioSwift"], path: "examples/swift/echo-server",
                      swiftSettings: [.swiftLanguageMode(.v6)]),
    .executableTarget(name: "aio-echo-client", dependencies: ["AioSwift"], path: "examples/swift/echo-client",
                      swiftSettings: [.swiftLanguageMode(.v6)]),
    .executableTarget(name: "aio-capture", dependencies: ["AioSwift"], path: "examples/swift/capture",
                      swiftSettings: [.swiftLanguageMode(.v6)]),
    // A user's program in the default Swift 6 language mode (the package's
    // own targets build in Swift 5 mode): top-level code, async let, task
    // groups, Task {}, cancellation reaching Swift's own awaits.
    .executableTarget(name: "aio-swift6-user", dependencies: ["AioSwift"], path: "Tests/Swift6User",
                      swiftSettings: [.swiftLanguageMode(.v6)]),
  ],
  swiftLanguageModes: [.v5]
)
