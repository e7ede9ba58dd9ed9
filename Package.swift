// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "IPVSProxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ipvs-proxy", targets: ["ipvs-proxy"]),
        .library(name: "IPVS", targets: ["IPVS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // libnl's include path and link flags, from pkg-config.
        .systemLibrary(
            name: "CLibNL",
            path: "Sources/CLibNL",
            pkgConfig: "libnl-genl-3.0 libnl-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-genl-3-dev"])]
        ),
        // The C shim: the only code that touches libnl.
        .target(
            name: "CNetlink",
            dependencies: ["CLibNL"],
            path: "CNetlink",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-sign-compare"])]
        ),
        // IPv4 and IPv6 address values.
        .target(name: "InternetAddress"),
        // Kubernetes Services, EndpointSlices and Endpoints: types, loading from files, validation.
        .target(
            name: "KubernetesModel",
            dependencies: ["InternetAddress", .product(name: "Yams", package: "Yams")]
        ),
        // Typed IPVS over the shim: virtual servers, real servers, batches, errors.
        .target(
            name: "IPVS",
            dependencies: [
                "CNetlink",
                "InternetAddress",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The subcommands of `ipvs-proxy`, as a library so tests can run them in-process.
        .target(
            name: "ProxyCommands",
            dependencies: [
                "IPVS",
                "KubernetesModel",
                "Translation",
                "Sync",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Services and endpoints to desired IPVS state, as kube-proxy's IPVS mode translates them.
        .target(name: "Translation", dependencies: ["IPVS", "KubernetesModel"]),
        // Plans and applies the difference between desired and kernel state, owning only what it made.
        .target(name: "Sync", dependencies: ["IPVS", "Translation", .product(name: "SystemPackage", package: "swift-system")]),
        .executableTarget(name: "ipvs-proxy", dependencies: ["ProxyCommands"]),
        .testTarget(name: "IPVSTests", dependencies: ["IPVS", "CNetlink"]),
        .testTarget(name: "TranslationTests", dependencies: ["Translation"]),
        .testTarget(name: "SyncTests", dependencies: ["Sync", "KubernetesModel"]),
        .testTarget(name: "KubernetesModelTests", dependencies: ["KubernetesModel"]),
        .target(name: "CTestNamespaces", path: "Tests/CTestNamespaces"),
        .testTarget(name: "IntegrationTests", dependencies: ["IPVS", "ProxyCommands", "CTestNamespaces"]),
    ]
)
