// swift-tools-version: 6.2
// 6.2 for the warning settings (SE-0480), which unlike unsafeFlags leave the package usable as a dependency.
import PackageDescription

// The C shim's warnings: -Wall -Wextra, less two that the kernel's and libnl's own shapes set off (NLMSG_OK compares
// an unsigned length with an int, and a callback takes parameters it may not use).
let shimWarnings: [CSetting] = [
    .enableWarning("all"), .enableWarning("extra"), .disableWarning("unused-parameter"),
    .disableWarning("sign-compare"),
]

let package = Package(
    name: "IPVSProxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ipvs-proxy", targets: ["ipvs-proxy"]),
        .library(name: "IPVS", targets: ["IPVS"]),
        .library(name: "IPVSModel", targets: ["IPVSModel"]),
        .library(name: "Interfaces", targets: ["Interfaces"]),
        .library(name: "InterfaceModel", targets: ["InterfaceModel"]),
        .library(name: "HostSystem", targets: ["HostSystem"]),
        .library(name: "KubernetesModel", targets: ["KubernetesModel"]),
        // For the fuzz targets in Tests/Fuzz, which exercise the reply parsers directly.
        .library(name: "CNetlink", targets: ["CNetlink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.2.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.25.0"),
    ],
    targets: [
        // libnl's include path and link flags, from pkg-config.
        .systemLibrary(
            name: "CLibNL",
            path: "Sources/CLibNL",
            pkgConfig: "libnl-genl-3.0 libnl-nf-3.0 libnl-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-genl-3-dev", "libnl-nf-3-dev"])]
        ),
        // libnftables' include path and link flags, from pkg-config.
        .systemLibrary(
            name: "CLibNFTables",
            path: "Sources/CLibNFTables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // Runs C code inside a network namespace (for CNetlink and CNFTables), and makes a bound socket and writes
        // a /proc/sys file there.
        .target(name: "CNetNamespace", cSettings: shimWarnings),
        // The C shim's netlink half: the only code that touches libnl (IPVS, links and addresses, conntrack, and
        // nf_tables' generation id).
        .target(
            name: "CNetlink",
            dependencies: ["CLibNL", "CNetNamespace"],
            path: "CNetlink",
            cSettings: shimWarnings
        ),
        // glibc's malloc tuning (<malloc.h>) for the daemon's heap.
        .target(name: "CHeapMemory", cSettings: shimWarnings),
        // The C shim's libnftables half: nftables commands as text, one call one transaction.
        .target(name: "CNFTables", dependencies: ["CLibNFTables", "CNetNamespace"], cSettings: shimWarnings),
        // YAML text as plain event records, for the fast manifest decoder: compiled against the libyaml that Yams
        // vendors and linked to that copy only (no system libyaml; see include/CYAMLEvents.h for why).
        .target(
            name: "CYAMLEvents",
            dependencies: [.product(name: "Yams", package: "Yams")],
            cSettings: shimWarnings
        ),
        // The version scripts/release stamps in at link time (a weak empty default; see its header).
        .target(name: "CProxyVersion"),
        // IPv4 and IPv6 address and network values.
        .target(name: "InternetAddress"),
        // Kubernetes Services, EndpointSlices, Endpoints, Nodes and ServiceCIDRs: types, loading from files,
        // validation.
        .target(
            name: "KubernetesModel",
            dependencies: ["InternetAddress", "CYAMLEvents", .product(name: "Yams", package: "Yams")]
        ),
        // Why a call to the kernel failed (KernelFailure), and the error of a failed call (KernelCallError), as plain
        // values: the reasons every kernel error carries.
        .target(name: "KernelErrors", dependencies: [.product(name: "SystemPackage", package: "swift-system")]),
        // The IPVS table as plain values: keys, servers, schedulers, flags, operations, failures.
        .target(
            name: "IPVSModel",
            dependencies: ["InternetAddress", "KernelErrors", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The node's links and addresses as plain values, and their changes and announcements.
        .target(name: "InterfaceModel", dependencies: ["InternetAddress", "KernelErrors"]),
        // nftables tables, sets and elements, and conntrack entries as plain values; ipvs-proxy's table design.
        .target(
            name: "NetfilterModel",
            dependencies: ["InternetAddress", "KernelErrors", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The Swift side of the C shim, under every kernel handle: a handle that owns a shim pointer and its lock
        // (dumps read again while interrupted, batches and their refusals), the shim's codes decoded (ShimError),
        // and the shim's address fields.
        .target(
            name: "KernelShim",
            dependencies: [
                "CNetlink", "KernelErrors", "InternetAddress", .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Connections to the kernel's nftables (libnftables) and conntrack table, over the shim.
        .target(
            name: "Netfilter",
            dependencies: ["CNetlink", "CNFTables", "KernelShim", "InternetAddress", "NetfilterModel"]
        ),
        // A connection to the kernel's IPVS table, over the shim.
        .target(
            name: "IPVS",
            dependencies: [
                "CNetlink", "KernelShim", "IPVSModel", .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Connections to the node's links and addresses (rtnetlink) and to their announcements, over the shim.
        .target(name: "Interfaces", dependencies: ["CNetlink", "KernelShim", "InterfaceModel"]),
        // The host outside netlink: kernel settings (sysctls), the process's privileges, sockets bound in a network
        // namespace.
        .target(
            name: "HostSystem",
            dependencies: [
                "CNetNamespace", "KernelErrors", "KernelShim", "InternetAddress",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The subcommands of `ipvs-proxy`, as a library so tests can run them in-process.
        .target(
            name: "ProxyCommands",
            dependencies: [
                "IPVS",
                "IPVSModel",
                "Interfaces",
                "HostSystem",
                "Netfilter",
                "NetfilterModel",
                "KubernetesModel",
                "Translation",
                "ProxyRules",
                "Sync",
                "KernelAccess",
                "StateSources",
                "ProxyDaemon",
                "ProxyConfiguration",
                "CProxyVersion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Opens the node's kernel connections and fits them to the sync engine's parts.
        .target(
            name: "KernelAccess",
            dependencies: [
                "IPVS", "IPVSModel", "Interfaces", "InterfaceModel", "Netfilter", "NetfilterModel", "Sync",
            ]
        ),
        // Services and endpoints to desired IPVS state, as kube-proxy's IPVS mode translates them.
        // What the node's kernel should hold for its Services, as plain values with no Kubernetes types.
        .target(name: "ProxyRules", dependencies: ["IPVSModel", "InternetAddress"]),
        .target(name: "Translation", dependencies: ["IPVSModel", "KubernetesModel", "InternetAddress", "ProxyRules"]),
        // Plans and applies the difference between desired and kernel state, owning only what it made.
        .target(
            name: "Sync",
            dependencies: [
                "IPVSModel", "InterfaceModel", "NetfilterModel", "ProxyRules",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Where desired state comes from while running: a manifest folder, or the Kubernetes API (list/watch).
        .target(
            name: "StateSources",
            dependencies: [
                "KubernetesModel",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // kube-proxy's configuration file (KubeProxyConfiguration v1alpha1), strictly, with kube-proxy's defaults.
        .target(
            name: "ProxyConfiguration",
            dependencies: ["IPVSModel", "InternetAddress", .product(name: "Yams", package: "Yams")]
        ),
        // The node daemon: the sync loop, kernel settings, health and metrics endpoints.
        .target(
            name: "ProxyDaemon",
            dependencies: [
                "IPVS", "IPVSModel", "Interfaces", "InterfaceModel", "HostSystem", "KubernetesModel", "Sync",
                "Translation", "ProxyRules", "StateSources", "CHeapMemory", "KernelAccess", "ProxyConfiguration",
                "NetfilterModel",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "ipvs-proxy", dependencies: ["ProxyCommands"]),
        .testTarget(
            name: "IPVSTests",
            dependencies: [
                "IPVS", "IPVSModel", "Interfaces", "InterfaceModel", "Netfilter", "NetfilterModel", "KernelShim",
                "CNetlink",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The layer under the kernel handles, without a kernel: the shim's codes, the errors' words, a handle's
        // dumps and batches against a fake shim.
        .testTarget(
            name: "KernelShimTests",
            dependencies: [
                "KernelShim", "KernelErrors", "CNetlink", "IPVSModel", "NetfilterModel",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "TranslationTests",
            dependencies: ["Translation", "ProxyRules", "IPVSModel", "KubernetesModel", "TestSupport"]),
        .testTarget(name: "NetfilterModelTests", dependencies: ["NetfilterModel", "InternetAddress"]),
        // Test helpers: temporary folders that clean up after themselves, a seeded random number generator.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // In-memory fakes of the kernel connections the sync engine uses, for host tests.
        .target(
            name: "FakeKernel",
            dependencies: [
                "Sync", "IPVSModel", "InterfaceModel", "NetfilterModel", "InternetAddress",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/FakeKernel"
        ),
        .testTarget(
            name: "SyncTests",
            dependencies: [
                "Sync", "FakeKernel", "TestSupport", "IPVSModel", "InterfaceModel", "NetfilterModel", "KubernetesModel",
                "Translation", "ProxyRules",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "ProxyDaemonTests",
            dependencies: [
                "ProxyDaemon", "ProxyCommands", "ProxyConfiguration", "FakeKernel", "TestSupport", "Sync", "IPVSModel",
                "InterfaceModel", "KubernetesModel", "StateSources", "Translation", "ProxyRules", "CHeapMemory",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // An HTTPS server that answers like a kube-apiserver, scripted by the test, for the API source's tests on the
        // host and the daemon's in the VM.
        .target(
            name: "FakeAPIServer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/FakeAPIServer"
        ),
        .testTarget(
            name: "StateSourcesTests",
            dependencies: [
                "StateSources", "KubernetesModel", "TestSupport", "FakeAPIServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The fake Kubernetes API server of scripts/bench's API steps: lists, watches and scripted events.
        .executableTarget(
            name: "bench-api-server",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/BenchAPIServer"
        ),
        // scripts/bench's side in the VM: times the steps, scrapes the daemon's /metrics, checks the kernel's table.
        .executableTarget(name: "bench-guest", path: "Tests/BenchGuest"),
        .testTarget(name: "ProxyConfigurationTests", dependencies: ["ProxyConfiguration"]),
        .testTarget(
            name: "KubernetesModelTests",
            dependencies: ["KubernetesModel", "CYAMLEvents", "CTestSupport", "TestSupport"]
        ),
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "IPVS", "IPVSModel", "Interfaces", "InterfaceModel", "Netfilter", "NetfilterModel", "KubernetesModel",
                "Translation", "ProxyRules", "Sync", "KernelAccess", "ProxyCommands", "CTestSupport", "FakeAPIServer",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
    ]
)

// Every warning in the project's own targets is an error when IPVS_PROXY_WARNINGS_AS_ERRORS=1, as scripts/test
// (and so CI) builds. SwiftPM applies these settings to this package's targets, never to its dependencies'
// (SE-0480). Not always on: Xcode and SwiftPM's swiftbuild build system compile a package that is a dependency
// with -suppress-warnings, which swiftc refuses next to -warnings-as-errors; and a newer compiler's new warning
// should not stop a build that only uses the package.
if Context.environment["IPVS_PROXY_WARNINGS_AS_ERRORS"] == "1" {
    for target in package.targets where target.type != .system {
        // C targets are named C and a capital (CNetlink, CTestSupport), so that one added later is covered too.
        // Only they get the C setting: a Swift target would pass it on to its Clang importer, for every header
        // it imports. Swift settings are ignored on a C target.
        let name = Array(target.name)
        if name.count > 1, name[0] == "C", name[1].isUppercase {
            target.cSettings = (target.cSettings ?? []) + [.treatAllWarnings(as: .error)]
        }
        target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
    }
}
